#!/usr/bin/env python3
"""lm-evaluation-harness's `local-completions` model through `hone serve`, against `hone eval` on the
same model and items: ARC-Easy (the harness's task over the local file, 0-shot, the first N
questions), the prediction of every question under acc and acc_norm, and the choice
log-likelihoods. The harness tokenizes with the run's tokenizer.json and sends token ids; the
server scores them with `echo` and `logprobs`.

    pip install lm_eval
    python scripts/serve_lm_eval.py RUN_DIR MODEL OUT [N]      # e.g. runs/default dpo /tmp/arc 200
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

run, model, out = sys.argv[1], sys.argv[2], sys.argv[3]
n = int(sys.argv[4]) if len(sys.argv) > 4 else 200
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
hone = os.path.join(root, "target", "release", "hone")
data = os.path.abspath(os.path.join(root, "..", "shared", "data", "eval", "arc_easy_test_genmc.jsonl"))
os.makedirs(os.path.join(out, "tasks"), exist_ok=True)
with open(os.path.join(out, "tasks", "arc_easy_local.yaml"), "w") as fh:
    fh.write(f"""task: arc_easy_local
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: multiple_choice
test_split: test
doc_to_text: "Question: {{{{question.stem}}}}\\nAnswer:"
doc_to_choice: "{{{{question.choices | map(attribute='text') | list}}}}"
doc_to_target: "{{{{(question.choices | map(attribute='label') | list).index(answerKey)}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
""")
# The harness loads the tokenizer as a Hugging Face folder. hone's models saw every document start
# with BOS, and `hone eval` scores contexts that way; the run's tokenizer.json leaves BOS to the chat
# template, so this copy adds it in its post-processor and the harness is told to use it.
tok_dir = os.path.join(out, "tokenizer")
os.makedirs(tok_dir, exist_ok=True)
tok = json.load(open(os.path.join(run, "tokenizer.json")))
tok_cfg = json.load(open(os.path.join(run, "tokenizer_config.json")))
bos = tok_cfg["bos_token"]
bos_id = next(t["id"] for t in tok["added_tokens"] if t["content"] == bos)
seq = lambda name: {"Sequence": {"id": name, "type_id": 0}}
tok["post_processor"] = {
    "type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, seq("A")],
    "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, seq("A"), seq("B")],
    "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
}
json.dump(tok, open(os.path.join(tok_dir, "tokenizer.json"), "w"))
tok_cfg["add_bos_token"] = True
json.dump(tok_cfg, open(os.path.join(tok_dir, "tokenizer_config.json"), "w"))

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = subprocess.Popen([hone, "serve", run, "--port", str(port)], stderr=subprocess.DEVNULL)
try:
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    import lm_eval
    from lm_eval.tasks import TaskManager

    t0 = time.time()
    res = lm_eval.simple_evaluate(
        model="local-completions",
        model_args=f"base_url=http://127.0.0.1:{port}/v1/completions,model={model},tokenizer_backend=huggingface,"
                   f"tokenizer={tok_dir},add_bos_token=True,tokenized_requests=True,num_concurrent=4,max_retries=1",
        tasks=["arc_easy_local"],
        num_fewshot=0,
        limit=n,
        log_samples=True,
        task_manager=TaskManager(include_path=os.path.join(out, "tasks")),
    )
    harness_s = time.time() - t0
finally:
    server.terminate()
    server.wait()

t0 = time.time()
hone_out = os.path.join(out, "hone")
subprocess.run([hone, "eval", "-m", os.path.join(run, model), "--task", os.path.join(root, "tasks", "arc_easy.toml"),
                "--limit", str(n), "--set", "eval.limit_mode=first", "-o", hone_out, "-q"], check=True)
hone_s = time.time() - t0

samples = sorted(res["samples"]["arc_easy_local"], key=lambda s: s["doc_id"])
mine = json.load(open(os.path.join(hone_out, "arc_easy.json")))["items"]
assert len(samples) == len(mine) == n, (len(samples), len(mine))
same_acc = same_norm = 0
worst = 0.0
for s, m in zip(samples, mine):
    lls = [float(r[0]) for r in s["filtered_resps"]]
    mine_lls = [c["loglik"] for c in m["choices"]]
    for a, b in zip(lls, mine_lls):
        worst = max(worst, abs(a - b) / max(abs(a), 1e-9))
    same_acc += max(range(len(lls)), key=lambda i: lls[i]) == m["pred"]
    same_norm += (s["acc_norm"] == 1.0) == m["correct_norm"]
summary = {"n": n, "model": model, "harness_through_server_wall_s": round(harness_s, 1), "hone_eval_wall_s": round(hone_s, 1),
           "same_prediction_acc": same_acc / n, "same_prediction_acc_norm": same_norm / n,
           "max_relative_loglik_difference": worst,
           "harness_acc": res["results"]["arc_easy_local"]["acc,none"]}
print(json.dumps(summary, indent=2))
if same_acc < n:
    sys.exit("predictions differ")
