#!/usr/bin/env python3
"""Drives the `hone serve` web app in headless Chromium and checks its three views end to end.

Start a server on a run (`hone serve runs/default --port 8080`), then:

    apt install chromium chromium-driver
    pip install selenium
    python scripts/serve_browser.py --url http://127.0.0.1:8080 --run-dir runs/default --shots DIR

Steps: open the page and wait for the model list; Chat: pick a chat model, send a question, wait for
the streamed answer to finish (chat.png); Compare: run a prompt on every model and wait for one card
per model (compare.png); Grade: sample a blind pair, pick answer A, wait for "saved" (grade.png); then
check that the last line of RUN_DIR/feedback/preferences.jsonl is a new JSON record with `prompt`,
`chosen`, `rejected` and `label`, holding the typed prompt. Window 1280x900. Exits non-zero with a
message (and DIR/failure.png) at the first failure.
"""
import argparse
import json
import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

QUESTION = "What is the capital of France?"
COMPARE_PROMPT = "Name three colours."


class CheckFailed(Exception):
    pass


def open_browser(args):
    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=args.chromedriver), options=options)
    driver.set_window_size(1280, 900)
    return driver


def by_id(driver, element_id):
    return driver.find_element(By.ID, element_id)


def page_error(driver):
    """The app's status bar text when it shows an error, else None."""
    bar = by_id(driver, "status")
    return bar.text if "error" in (bar.get_attribute("class") or "").split() else None


def wait_for(driver, what, condition, timeout):
    """Waits until condition(driver) is truthy; fails early when the page shows an error."""
    def step(d):
        error = page_error(d)
        if error:
            raise CheckFailed(f"{what}: the page shows an error: {error}")
        return condition(d)

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(step)
    except TimeoutException:
        raise CheckFailed(f"{what}: nothing after {timeout} s") from None


def type_into(driver, element_id, text):
    box = by_id(driver, element_id)
    box.clear()
    box.send_keys(text)


def load(driver, args):
    driver.get(args.url)
    wait_for(driver, "loading /api/info", lambda d: d.find_elements(By.CSS_SELECTOR, "body[data-ready]"), 30)
    if by_id(driver, "api-key-box").is_displayed():
        if not args.api_key:
            raise CheckFailed("the server needs an API key: pass --api-key")
        type_into(driver, "api-key", args.api_key)
        by_id(driver, "api-key-save").click()
    models = driver.find_elements(By.CSS_SELECTOR, "#chat-model option")
    if not models:
        raise CheckFailed("the chat view lists no model")
    return [(m.get_attribute("value"), m.get_attribute("data-kind")) for m in models]


def chat(driver, args, models):
    by_id(driver, "tab-chat").click()
    chat_models = [m for m, kind in models if kind == "chat"]
    if not chat_models:
        raise CheckFailed(f"no chat model among {models}")
    Select(by_id(driver, "chat-model")).select_by_value(args.chat_model or chat_models[0])
    type_into(driver, "chat-input", QUESTION)
    by_id(driver, "chat-send").click()
    reply = wait_for(
        driver, "chat answer",
        lambda d: d.find_elements(By.CSS_SELECTOR, "#chat-log .msg.assistant.done"),
        args.timeout,
    )[-1]
    if "error" in reply.get_attribute("class").split():
        raise CheckFailed(f"chat answer failed: {reply.text}")
    if not reply.text.strip():
        raise CheckFailed("the chat answer is empty")
    users = driver.find_elements(By.CSS_SELECTOR, "#chat-log .msg.user")
    if not users or users[-1].text != QUESTION:
        raise CheckFailed("the question is not shown as a user message")
    driver.save_screenshot(os.path.join(args.shots, "chat.png"))


def compare(driver, args, models):
    by_id(driver, "tab-compare").click()
    type_into(driver, "compare-prompt", COMPARE_PROMPT)
    by_id(driver, "compare-run").click()
    cards = wait_for(
        driver, "compare cards",
        lambda d: (c := d.find_elements(By.CSS_SELECTOR, "#compare-results .card")) and len(c) == len(models) and c,
        args.timeout,
    )
    shown = sorted(c.get_attribute("data-model") for c in cards)
    if shown != sorted(m for m, _ in models):
        raise CheckFailed(f"compare cards are for {shown}, the models are {[m for m, _ in models]}")
    if "#compare?" not in driver.current_url or "prompt=" not in driver.current_url:
        raise CheckFailed(f"the compare settings are not in the address: {driver.current_url}")
    driver.save_screenshot(os.path.join(args.shots, "compare.png"))


def grade(driver, args, prompt):
    by_id(driver, "tab-grade").click()
    type_into(driver, "grade-prompt", prompt)
    by_id(driver, "grade-sample").click()
    texts = wait_for(
        driver, "grade pair",
        lambda d: len(t := d.find_elements(By.CSS_SELECTOR, "#grade-answer-a pre, #grade-answer-b pre")) == 2 and t,
        args.timeout,
    )
    for box in ("grade-answer-a", "grade-answer-b"):
        if by_id(driver, box).find_elements(By.CSS_SELECTOR, ".reveal"):
            raise CheckFailed(f"{box} names its model before the verdict")
    if not by_id(driver, "verdict-a").is_enabled():
        raise CheckFailed(f"the verdict buttons stay disabled: {by_id(driver, 'grade-status').text}")
    answer_a = texts[0].get_attribute("textContent")
    by_id(driver, "verdict-a").click()
    wait_for(driver, "saving the verdict", lambda d: "saved" in by_id(d, "grade-status").text, 30)
    if len(driver.find_elements(By.CSS_SELECTOR, "#view-grade .reveal")) != 2:
        raise CheckFailed("the models are not revealed after the verdict")
    driver.save_screenshot(os.path.join(args.shots, "grade.png"))
    return answer_a


def count_lines(path):
    if not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def check_feedback(path, before, prompt, answer_a):
    if not os.path.exists(path):
        raise CheckFailed(f"{path} was not written")
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    if len(lines) <= before:
        raise CheckFailed(f"{path} has {len(lines)} records, as many as before grading ({before})")
    try:
        record = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        raise CheckFailed(f"the last line of {path} is not JSON: {e}") from None
    missing = [k for k in ("prompt", "chosen", "rejected", "label") if k not in record]
    if missing:
        raise CheckFailed(f"the last record of {path} lacks {missing}: {sorted(record)}")
    if prompt not in json.dumps(record["prompt"], ensure_ascii=False):
        raise CheckFailed(f"the last record's prompt {record['prompt']!r} does not hold {prompt!r}")
    # Verdict "a" was clicked: answer A is the chosen one (checked when `chosen` is plain text).
    if isinstance(record["chosen"], str) and answer_a.strip() not in record["chosen"]:
        raise CheckFailed(f"the last record's chosen {record['chosen']!r} is not answer A {answer_a!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--run-dir", required=True, help="the run the server was started on")
    parser.add_argument("--shots", required=True, help="folder for the screenshots")
    parser.add_argument("--chat-model", help="model for the chat view (default: the first chat model)")
    parser.add_argument("--api-key", help="typed into the page when the server asks for one")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for answers")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()
    os.makedirs(args.shots, exist_ok=True)
    feedback = os.path.join(args.run_dir, "feedback", "preferences.jsonl")
    # A prompt no earlier run typed, so the record found is this run's.
    prompt = f"Write one sentence about tea. (check {int(time.time())})"

    try:
        driver = open_browser(args)
    except WebDriverException as e:
        sys.exit(f"FAIL browser: cannot start {args.chromium} through {args.chromedriver}: {e.msg}")
    step = "load"
    try:
        models = load(driver, args)
        print(f"ok load: {len(models)} models", flush=True)
        step = "chat"
        chat(driver, args, models)
        print("ok chat", flush=True)
        step = "compare"
        compare(driver, args, models)
        print("ok compare", flush=True)
        step = "grade"
        before = count_lines(feedback)
        answer_a = grade(driver, args, prompt)
        print("ok grade", flush=True)
        step = "feedback"
        check_feedback(feedback, before, prompt, answer_a)
        print(f"ok feedback: {feedback}", flush=True)
    except (CheckFailed, WebDriverException) as e:
        driver.save_screenshot(os.path.join(args.shots, "failure.png"))
        sys.exit(f"FAIL {step}: {e.msg if isinstance(e, WebDriverException) else e}")
    finally:
        driver.quit()
    print(f"all steps passed; screenshots in {args.shots}")


if __name__ == "__main__":
    main()
