//! The genre writers: one method per kind of document, each stating its focal fact and adding other
//! facts only while they have budget.

use super::phrases::*;
use super::{Genre, Writer, join_and};
use crate::arith::Problem;
use crate::date::Date;
use crate::facts::{Relation, Subject};
use crate::names::capitalise;
use crate::rng::Draw;
use crate::text;
use std::collections::BTreeSet;

impl Writer<'_> {
    // ----- encyclopedia -----

    /// An encyclopedia entry for `s`. With `all`, every fact of the subject is stated once regardless
    /// of budget (the first pass that puts every fact in the corpus); otherwise only budgeted ones.
    pub(super) fn entry(&mut self, s: Subject, all: bool, focal: Option<usize>) {
        let w = self.w;
        let facts = self.by_subject.get(&s).cloned().unwrap_or_default();
        let since = facts.iter().map(|&f| w.facts[f].since).max().unwrap_or(self.first_year);
        let date = self.date_from(since);
        let mut body: Vec<String> = Vec::new();
        for &f in &facts {
            if all || Some(f) == focal || (self.can(f, date.year) && self.rng.percent(60)) {
                body.push(self.say(f));
            }
        }
        self.rng.shuffle(&mut body);
        let intro = match s {
            Subject::Country(i) => {
                let c = &w.countries[i];
                body.push(format!("{} is known for its {}.", c.name, c.export));
                // Listing a country's other cities states where each lies; only budgeted ones.
                let others: Vec<usize> = c.cities.iter().copied().filter(|&ci| ci != c.capital).collect();
                let mut named = Vec::new();
                for ci in others {
                    if let Some(&f) = self.by_subject.get(&Subject::City(ci)).and_then(|v| v.first())
                        && self.can(f, date.year)
                        && self.rng.percent(50)
                    {
                        self.cur.push(f);
                        self.budget[f] -= 1;
                        named.push(w.cities[ci].name.clone());
                    }
                }
                if !named.is_empty() {
                    body.push(format!("Other cities in {} include {}.", c.name, join_and(&named)));
                }
                format!("{} is a country.", c.name)
            }
            Subject::City(i) => {
                let c = &w.cities[i];
                body.push(format!("{} is known for {}.", c.name, c.landmark));
                body.push(
                    self.rng
                        .pick(&[
                            "Visitors often come in the summer.",
                            "The city has grown a lot over the years.",
                            "Many streets in the old town are narrow.",
                        ])
                        .to_string(),
                );
                String::new()
            }
            Subject::Person(i) => {
                let p = &w.people[i];
                body.push(format!("Friends describe {} as {}.", p.first, TRAITS[i % TRAITS.len()]));
                // Inventions of this person, if still budgeted.
                for (k, inv) in w.inventions.iter().enumerate() {
                    if inv.inventor == i {
                        for f in self.open_facts(Subject::Invention(k), date.year, usize::MAX) {
                            if w.facts[f].relation == Relation::Inventor && self.rng.percent(50) {
                                body.push(self.say(f));
                            }
                        }
                    }
                }
                format!("{} is a person.", p.name)
            }
            Subject::Invention(i) => {
                let inv = &w.inventions[i];
                body.push(format!("It is used to {}.", inv.purpose));
                body.push(self.rng.pick(INVENTION_FLAVOUR).to_string());
                format!("{} is {} {}.", capitalise(&inv.name), crate::names::article(&inv.kind), inv.kind)
            }
            Subject::Event(_) => {
                body.push(self.rng.pick(EVENT_FLAVOUR).to_string());
                String::new()
            }
        };
        let title = capitalise(w.subject_name(s));
        let text = if intro.is_empty() {
            format!("{title}\n\n{}", body.join(" "))
        } else {
            format!("{title}\n\n{intro} {}", body.join(" "))
        };
        self.finish(Genre::Encyclopedia, date, text);
    }

    // ----- forum -----

    pub(super) fn forum(&mut self, focal: usize) {
        let w = self.w;
        let fact = &w.facts[focal];
        let date = self.date_from(fact.since);
        let q = text::question(w, fact, &mut self.rng);
        let board = *self.rng.pick(BOARDS);
        let asker = self.username();
        let opener = *self.rng.pick(OPENERS);
        let mut lines = vec![
            format!("{board} forum"),
            format!("Thread: {q}"),
            format!("{asker} asked on {}: {opener}{q}", date.long()),
        ];
        if self.rng.percent(20) {
            let u = self.username();
            lines.push(format!("{u} replied: {}", self.rng.pick(DUNNO)));
        }
        let u = self.username();
        self.cur.push(focal);
        self.budget[focal] -= 1;
        let reply = if self.rng.percent(40) {
            text::short_answer(fact, &fact.answer)
        } else {
            text::statement(w, fact, &mut self.rng)
        };
        lines.push(format!("{u} replied: {reply}"));
        let more = self.open_facts(fact.subject, date.year, focal);
        if !more.is_empty() && self.rng.percent(50) {
            let f = *self.rng.pick(&more);
            let u = self.username();
            let s = self.say(f);
            lines.push(format!("{u} replied: Also, {}", self.embed(&s)));
        } else if self.can(focal, date.year) && self.rng.percent(40) {
            let u = self.username();
            let s = self.say(focal);
            lines.push(format!("{u} replied: Yes. {s}"));
        }
        for _ in 0..self.rng.int(0, 2) {
            let u = self.username();
            let pos = self.rng.int(3, lines.len() as i64) as usize;
            lines.insert(pos, format!("{u} replied: {}", self.rng.pick(CHATTER)));
        }
        if self.rng.percent(30) {
            lines.push(format!("{asker} replied: {}", self.rng.pick(THANKS)));
        }
        self.finish(Genre::Forum, date, lines.join("\n"));
    }

    /// An everyday thread with no facts of the world in it.
    pub(super) fn chat_thread(&mut self) {
        let date = self.date_from(self.first_year);
        let (q, replies) = *self.rng.pick(CHAT_THREADS);
        let board = *self.rng.pick(BOARDS);
        let asker = self.username();
        let mut lines =
            vec![format!("{board} forum"), format!("Thread: {q}"), format!("{asker} asked on {}: {q}", date.long())];
        let mut rs: Vec<&str> = replies.to_vec();
        self.rng.shuffle(&mut rs);
        for r in rs.iter().take(self.rng.int(1, rs.len() as i64) as usize) {
            let u = self.username();
            lines.push(format!("{u} replied: {r}"));
        }
        if self.rng.percent(40) {
            lines.push(format!("{asker} replied: {}", self.rng.pick(THANKS)));
        }
        self.finish(Genre::Forum, date, lines.join("\n"));
    }

    // ----- news -----

    pub(super) fn news(&mut self, focal: usize) {
        let w = self.w;
        let fact = &w.facts[focal];
        let paper = *self.rng.pick(PAPERS);
        match (fact.subject, fact.relation) {
            (Subject::Event(e), rel) => {
                let ev = &w.events[e];
                let city = &w.cities[ev.city].name;
                let year_fact = self.by_subject[&fact.subject]
                    .iter()
                    .copied()
                    .find(|&f| w.facts[f].relation == Relation::EventYear)
                    .expect("event year");
                let place_fact = self.by_subject[&fact.subject]
                    .iter()
                    .copied()
                    .find(|&f| w.facts[f].relation == Relation::EventPlace)
                    .expect("event place");
                if rel == Relation::EventYear || (self.can(year_fact, ev.date.year) && self.rng.percent(50)) {
                    // The report of the day: the dateline states the date.
                    self.cur.push(year_fact);
                    self.budget[year_fact] -= 1;
                    let mut body = Vec::new();
                    if rel == Relation::EventPlace || self.can(place_fact, ev.date.year) {
                        self.cur.push(place_fact);
                        self.budget[place_fact] -= 1;
                        body.push(format!("{} was {} in {city} today.", capitalise(&ev.name), ev.participle));
                    } else {
                        body.push(format!("{} was {} today.", capitalise(&ev.name), ev.participle));
                    }
                    body.push(self.rng.pick(EVENT_FLAVOUR).to_string());
                    body.push(self.rng.pick(QUOTES).to_string());
                    let text = format!("{paper}, {}.\n{}", ev.date.long(), body.join(" "));
                    self.finish(Genre::News, ev.date, text);
                } else {
                    // A later feature about the place, which says nothing about the year.
                    let date = ev.date.random_after(&mut self.rng, self.cutoff);
                    self.cur.push(place_fact);
                    self.budget[place_fact] -= 1;
                    let lead = match self.rng.int(0, 2) {
                        0 => format!("Visitors still come to {city} to see where {} was {}.", ev.name, ev.participle),
                        1 => format!("In {city}, people still talk about {}.", ev.name),
                        _ => text::statement_with(w, &w.facts[place_fact], city, &mut self.rng),
                    };
                    let lead = if lead.contains(" was ") || lead.starts_with("Visitors") {
                        lead
                    } else {
                        format!("{lead} {} was {} there.", capitalise(&ev.name), ev.participle)
                    };
                    let text = format!("{paper}, {}.\n{lead} {}", date.long(), self.rng.pick(EVENT_FLAVOUR));
                    self.finish(Genre::News, date, text);
                }
            }
            (Subject::Invention(i), rel) => {
                let inv = &w.inventions[i];
                let year_fact = self.by_subject[&fact.subject]
                    .iter()
                    .copied()
                    .find(|&f| w.facts[f].relation == Relation::InventionYear)
                    .expect("invention year");
                let who_fact = self.by_subject[&fact.subject]
                    .iter()
                    .copied()
                    .find(|&f| w.facts[f].relation == Relation::Inventor)
                    .expect("inventor");
                let inventor = &w.people[inv.inventor];
                let with_year =
                    rel == Relation::InventionYear || (self.can(year_fact, inv.year) && self.rng.percent(50));
                let date = if with_year {
                    self.cur.push(year_fact);
                    self.budget[year_fact] -= 1;
                    Date::random(&mut self.rng, inv.year, inv.year)
                } else {
                    Date::random(&mut self.rng, inv.year, self.cutoff)
                };
                let mut body = Vec::new();
                let who = rel == Relation::Inventor || self.can(who_fact, date.year);
                if who {
                    self.cur.push(who_fact);
                    self.budget[who_fact] -= 1;
                }
                match (with_year, who) {
                    (true, true) => {
                        body.push(format!("{} has shown a new invention this year: {}.", inventor.name, inv.name))
                    }
                    (true, false) => body.push(format!("A new invention was shown this year: {}.", inv.name)),
                    (false, true) => body.push(text::statement(w, &w.facts[who_fact], &mut self.rng)),
                    (false, false) => unreachable!("the focal fact is always stated"),
                }
                body.push(format!("It is used to {}.", inv.purpose));
                body.push(self.rng.pick(INVENTION_FLAVOUR).to_string());
                body.push(self.rng.pick(QUOTES).to_string());
                let text = format!("{paper}, {}.\n{}", date.long(), body.join(" "));
                self.finish(Genre::News, date, text);
            }
            (s, _) => {
                // Local news that carries the fact as background.
                let date = self.date_from(fact.since);
                let city = match s {
                    Subject::Country(c) => w.countries[c].capital,
                    Subject::City(c) => c,
                    Subject::Person(p) => w.people[p].home_city,
                    _ => self.rng.index(w.cities.len()),
                };
                let mut body = vec![self.rng.pick(LOCAL_NEWS).replace("{c}", &w.cities[city].name)];
                body.push(self.say(focal));
                let more = self.open_facts(s, date.year, focal);
                if !more.is_empty() && self.rng.percent(40) {
                    let f = *self.rng.pick(&more);
                    body.push(self.say(f));
                }
                body.push(self.rng.pick(QUOTES).to_string());
                let text = format!("{paper}, {}.\n{}", date.long(), body.join(" "));
                self.finish(Genre::News, date, text);
            }
        }
    }

    // ----- story -----

    pub(super) fn story(&mut self, focal: Option<usize>) {
        let w = self.w;
        let (hero, since) = match focal.map(|f| (&w.facts[f], f)) {
            Some((f, _)) => match f.subject {
                Subject::Person(p) => (p, f.since),
                _ => (self.rng.index(w.people.len()), f.since),
            },
            None => (self.rng.index(w.people.len()), self.first_year),
        };
        let p = &w.people[hero];
        let since = since.max(p.birth_year + 20);
        let date = self.date_from(since);
        let elsewhere = &w.cities[self.rng.index(w.cities.len())].name;
        let n_lines = self.rng.int(5, 11) as usize;
        let mut lines: Vec<String> = Vec::new();
        for _ in 0..n_lines {
            let l =
                self.rng.pick(STORY_LINES).replace("{n}", &p.first).replace("{N}", &p.first).replace("{c}", elsewhere);
            if !lines.contains(&l) {
                lines.push(l);
            }
        }
        if let Some(f) = focal {
            let s = self.say(f);
            let pos = self.rng.index(lines.len() + 1);
            let sentence = if matches!(w.facts[f].subject, Subject::Person(x) if x == hero) {
                s
            } else {
                let frame = self.rng.pick(FRAMES).replace("{n}", &p.first).replace("{N}", &p.first);
                capitalise(&frame.replace("{x}", &self.embed(&s)))
            };
            lines.insert(pos, sentence);
            // The hero's own facts, while budgeted.
            for g in self.open_facts(Subject::Person(hero), date.year, f) {
                if self.rng.percent(40) {
                    let s = self.say(g);
                    let pos = self.rng.index(lines.len() + 1);
                    lines.insert(pos, s);
                }
            }
        }
        let title = self.rng.pick(STORY_TITLES).replace("{c}", elsewhere);
        let text = format!("{title}\n\n{}", lines.join(" "));
        self.finish(Genre::Story, date, text);
    }

    // ----- lists -----

    pub(super) fn fact_list(&mut self, focal: usize) {
        let w = self.w;
        let rel = w.facts[focal].relation;
        let date = self.date_from(w.facts[focal].since);
        let mut items = vec![focal];
        let mut others: Vec<usize> = (0..w.facts.len())
            .filter(|&f| f != focal && w.facts[f].relation == rel && self.can(f, date.year))
            .collect();
        self.rng.shuffle(&mut others);
        let k = self.rng.int(2, 9) as usize;
        items.extend(others.into_iter().take(k));
        if matches!(rel, Relation::BirthYear | Relation::InventionYear | Relation::EventYear) {
            items.sort_by_key(|&f| w.facts[f].answer.clone());
        }
        let title = match rel {
            Relation::Capital => "Countries and their capitals",
            Relation::Language => "Languages of the world",
            Relation::Currency => "Money around the world",
            Relation::Population => "Population by country",
            Relation::CityCountry => "Cities and their countries",
            Relation::BirthYear => "Birth years",
            Relation::Profession => "Who does what",
            Relation::HomeCity => "Where people live",
            Relation::Inventor => "Inventions and their inventors",
            Relation::InventionYear => "Inventions by year",
            Relation::EventPlace => "Where it happened",
            Relation::EventYear => "A timeline",
        };
        let numbered = self.rng.percent(50);
        let sentences = self.rng.percent(30);
        let mut lines = vec![title.to_string()];
        for (n, &f) in items.iter().enumerate() {
            let fact = &w.facts[f];
            let (s, a) = (capitalise(&fact.subject_name), &fact.answer);
            let body = if sentences {
                self.cur.push(f);
                self.budget[f] -= 1;
                text::statement(w, fact, &mut self.rng)
            } else {
                self.cur.push(f);
                self.budget[f] -= 1;
                match rel {
                    Relation::Currency => format!("{s}: the {a}"),
                    Relation::Population => format!("{s}: about {a}"),
                    Relation::CityCountry => format!("{s} ({a})"),
                    Relation::BirthYear => format!("{s}, born {a}"),
                    Relation::InventionYear | Relation::EventYear => format!("{a}: {}", fact.subject_name),
                    _ => format!("{s}: {a}"),
                }
            };
            lines.push(if numbered { format!("{}. {body}", n + 1) } else { format!("- {body}") });
        }
        self.finish(Genre::List, date, lines.join("\n"));
    }

    /// Lists with no facts in them (days, months, counting), so "a list of N" is a familiar shape.
    pub(super) fn plain_list(&mut self) {
        let date = self.date_from(self.first_year);
        let (title, items): (String, Vec<String>) = match self.rng.int(0, 5) {
            0 => (
                "Days of the week".into(),
                ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
                    .map(String::from)
                    .to_vec(),
            ),
            1 => ("Months of the year".into(), crate::date::MONTHS.map(String::from).to_vec()),
            2 => {
                let step = self.rng.int(2, 10);
                let start = self.rng.int(1, 20);
                (
                    format!("Counting by {step}s"),
                    (0..self.rng.int(5, 10)).map(|i| (start + i * step).to_string()).collect(),
                )
            }
            3 => (
                "Things to pack for a trip".into(),
                ["a map", "warm socks", "a water bottle", "a notebook", "bread and cheese", "a lamp", "a blanket"]
                    .map(String::from)
                    .to_vec(),
            ),
            4 => (
                "Colours of the rainbow".into(),
                ["red", "orange", "yellow", "green", "blue", "indigo", "violet"].map(String::from).to_vec(),
            ),
            _ => ("The four seasons".into(), ["spring", "summer", "autumn", "winter"].map(String::from).to_vec()),
        };
        let take = self.rng.int(3, items.len() as i64) as usize;
        let numbered = self.rng.percent(50);
        let mut lines = vec![title];
        for (n, it) in items.iter().take(take).enumerate() {
            lines.push(if numbered { format!("{}. {it}", n + 1) } else { format!("- {it}") });
        }
        self.finish(Genre::List, date, lines.join("\n"));
    }

    // ----- arithmetic -----

    pub(super) fn arithmetic(&mut self, reserved: &BTreeSet<Problem>) {
        let date = self.date_from(self.first_year);
        let text = match self.rng.int(0, 3) {
            0 => {
                let mut lines =
                    vec![self.rng.pick(&["Practice sums", "Arithmetic drill", "Exercises", "Homework"]).to_string()];
                for _ in 0..self.rng.int(4, 10) {
                    let p = Problem::random_except(&mut self.rng, reserved);
                    lines.push(if self.rng.percent(75) { p.worked() } else { p.equation() });
                }
                lines.join("\n")
            }
            1 => {
                let mut lines = Vec::new();
                for _ in 0..self.rng.int(2, 5) {
                    let p = Problem::random_except(&mut self.rng, reserved);
                    let answer = if self.rng.percent(50) { p.worked() } else { p.answer().to_string() };
                    lines.push(format!("Question: {}\nAnswer: {answer}", p.question(&mut self.rng)));
                }
                lines.join("\n\n")
            }
            _ => {
                let p = Problem::random_except(&mut self.rng, reserved);
                let who = &self.w.people[self.rng.index(self.w.people.len())];
                let (q, a) = p.word_problem(&who.first, &who.pronoun, &mut self.rng);
                if self.rng.percent(40) {
                    format!("Problem: {q}\nSolution: {a}\n#### {}", p.answer())
                } else {
                    format!("Problem: {q}\nSolution: {a}")
                }
            }
        };
        self.finish(Genre::Arithmetic, date, text);
    }
}
