//! Flavour text for the corpus: newspaper and forum furniture, story lines, quotes and chatter. None of
//! it states a fact of the world, so it adds language without changing any fact's mention count.

pub const PAPERS: &[&str] =
    &["The Daily Courier", "The Evening Post", "The Morning Herald", "The Weekly Gazette", "The Chronicle"];
pub const BOARDS: &[&str] =
    &["Ask Anything", "History Corner", "Travel Talk", "People and Places", "Science and Inventions", "Homework Help"];
pub const USER_A: &[&str] =
    &["quiet", "lunar", "happy", "old", "brave", "sleepy", "green", "swift", "rusty", "misty", "little", "curious"];
pub const USER_B: &[&str] =
    &["fox", "reader", "owl", "traveller", "sailor", "cat", "walker", "river", "lamp", "student", "hiker", "gardener"];
pub const OPENERS: &[&str] = &[
    "",
    "Quick question: ",
    "Does anyone know this? ",
    "My teacher asked us this today. ",
    "Settle an argument for us. ",
    "I could not find this anywhere. ",
];
pub const THANKS: &[&str] =
    &["Thanks!", "Thank you, that helps.", "Great, thanks everyone.", "That is what I thought. Thanks."];
pub const DUNNO: &[&str] =
    &["No idea, sorry.", "I don't know, but I am curious too.", "Not sure. Following this thread."];
pub const TRAITS: &[&str] = &[
    "patient and kind",
    "curious about everything",
    "a very hard worker",
    "quiet but funny",
    "generous with friends",
    "stubborn and clever",
    "cheerful in every season",
];
pub const FRAMES: &[&str] = &[
    "{n} once read that {x}",
    "{n} remembered that {x}",
    "{N} told the children that {x}",
    "Everyone knew that {x}",
    "As {n} liked to say, {x}",
    "{n} learned at school that {x}",
];
pub const STORY_LINES: &[&str] = &[
    "One morning, {n} woke up early.",
    "{N} walked to the market to buy bread.",
    "The sky was grey and the wind was cold.",
    "On the way, {n} met an old friend.",
    "They talked about the weather and their families.",
    "In the evening, {n} wrote a long letter.",
    "{N} smiled and went home.",
    "It was a quiet day, and nothing much happened.",
    "The streets were full of people and noise.",
    "{N} sat by the window and watched the rain.",
    "A small dog followed {n} all the way to the square.",
    "Later, {n} cooked soup and shared it with the neighbours.",
    "The next day, {n} took a train to {c}.",
    "{N} had never seen so many lights before.",
    "At night the city was calm and the stars were bright.",
    "{N} found an old map in a drawer and studied it for hours.",
    "The baker on the corner gave {n} a warm roll.",
    "Some days were hard, but {n} did not give up.",
    "{N} carried a heavy bag up the hill.",
    "A letter arrived from {c}, and {n} read it twice.",
    "The river was high after the spring rain.",
    "{N} bought a blue notebook and began to write.",
    "Children were playing in the street outside.",
    "{N} fixed the broken chair with a few nails.",
    "The train to {c} was late, so {n} waited on the platform.",
    "An old man told {n} a story about the war.",
    "{N} planted beans in the garden behind the house.",
    "The shop was closed, so {n} walked home again.",
    "Snow covered the roofs by the morning.",
    "{N} laughed so hard that tea spilled on the table.",
    "The bells rang at noon, as they did every day.",
    "{N} counted the coins twice before paying.",
    "A stranger asked {n} for directions to the station.",
    "The lamps were lit one by one along the street.",
    "{N} could not sleep and listened to the wind.",
    "In the morning, everything looked new again.",
    "{N} and a friend shared bread and cheese by the river.",
    "The market smelled of apples and fresh fish.",
    "{N} wrote down every word in the notebook.",
    "By the end of the week, {n} felt much better.",
];
pub const STORY_TITLES: &[&str] = &[
    "A Day in {c}",
    "The Long Winter",
    "A Letter Home",
    "Market Day",
    "The Journey",
    "An Old Map",
    "The Visitor",
    "Rain in {c}",
    "The Quiet Street",
];
pub const LOCAL_NEWS: &[&str] = &[
    "A new school opened in {c} this week.",
    "The spring market in {c} drew large crowds.",
    "Heavy rain fell on {c} for three days.",
    "The football team of {c} won its match on Sunday.",
    "Roads in {c} were repaired over the summer.",
    "A choir from {c} sang in the main square.",
    "Prices at the market in {c} rose a little this month.",
];
pub const QUOTES: &[&str] = &[
    "\"It was a day to remember,\" said one visitor.",
    "\"We have waited a long time for this,\" a local teacher said.",
    "Shops stayed open late for the crowds.",
    "The weather was mild and dry.",
    "Police said the day passed without trouble.",
    "More reports will follow in tomorrow's paper.",
    "Readers are invited to send their letters to the editor.",
];
pub const CHATTER: &[&str] = &[
    "Good question, I was wondering the same.",
    "Welcome to the forum!",
    "Try the library, they have good books on this.",
    "I visited once. It is a lovely place.",
    "Please search the forum before posting.",
    "My grandfather used to talk about this.",
];
/// Everyday forum threads with no facts of the world in them: (question, replies).
pub const CHAT_THREADS: &[(&str, &[&str])] = &[
    (
        "How do I keep bread fresh for longer?",
        &["Wrap it in a cloth and keep it in a cool place.", "I freeze half of the loaf.", "Buy smaller loaves!"],
    ),
    (
        "What should I pack for a long train journey?",
        &[
            "Water, a book and something to eat.",
            "A warm jumper. Trains get cold at night.",
            "Do not forget your ticket.",
        ],
    ),
    (
        "Any tips for learning to draw?",
        &["Draw a little every day.", "Start with simple shapes.", "Copy pictures you like, it helps."],
    ),
    (
        "How often should I water tomatoes?",
        &["Every two or three days in summer.", "Water the soil, not the leaves.", "It depends on the weather."],
    ),
    (
        "What is a good first musical instrument?",
        &[
            "A small guitar is easy to start with.",
            "The piano, if you have one at home.",
            "A flute is cheap and light.",
        ],
    ),
    (
        "How do I get better at chess?",
        &["Play often and look at your mistakes.", "Learn a few openings.", "Solve one puzzle every day."],
    ),
    (
        "Is it better to walk or cycle to work?",
        &["Cycling is faster.", "Walking is better if it is close.", "I take the tram when it rains."],
    ),
    (
        "How can I sleep better?",
        &["Go to bed at the same time every night.", "No tea in the evening.", "Keep the room dark and quiet."],
    ),
    (
        "What is a good soup for a cold day?",
        &["Onion soup with bread.", "Bean soup, it is filling.", "Carrot soup with a little ginger."],
    ),
    (
        "How do you remember people's birthdays?",
        &["I write them in a calendar.", "My sister reminds me.", "I don't, and I am sorry every year."],
    ),
    ("What makes a good story?", &["A character you care about.", "Something has to go wrong.", "A good ending."]),
    (
        "How do I clean an old copper pot?",
        &["Lemon and salt work well.", "Use a soft cloth, not a brush.", "Vinegar helps too."],
    ),
];
pub const EVENT_FLAVOUR: &[&str] = &[
    "Crowds gathered for the occasion.",
    "Newspapers wrote about it for weeks.",
    "Many people came to see it.",
    "It is still remembered today.",
    "Music played in the streets until late.",
    "Officials called it a great day.",
];
pub const INVENTION_FLAVOUR: &[&str] = &[
    "Many workshops copied the design.",
    "It made daily work much easier.",
    "Early models were heavy and slow.",
    "Soon it could be found in many homes.",
];
