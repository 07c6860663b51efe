#!/usr/bin/env python3
"""hone's multiple-choice evaluation against lm-evaluation-harness, item by item, on ARC.

Writes task YAMLs over the local ARC files (the harness cannot reach its dataset hub here), runs the
harness's `hf` backend on a Hugging Face folder (0-shot, the first N questions, float32) and
`hone eval` on the same folder (`eval.limit_mode = first`), then compares every question: the
predictions under acc and acc_norm, and each choice's log-likelihood. Prints both wall times.

    python scripts/lm_eval_compare.py HF_FOLDER OUT [N] [HONE_BIN]
"""
import json
import os
import subprocess
import sys
import time

hf, out = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
hone = sys.argv[4] if len(sys.argv) > 4 else "target/release/hone"
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
data = os.path.abspath(os.path.join(root, "..", "shared", "data", "eval"))
os.makedirs(os.path.join(out, "tasks"), exist_ok=True)

# The harness's arc_easy/arc_challenge (ai2_arc YAMLs), over the local files: ARC-Easy here keeps the
# original schema (question.stem, question.choices[]), ARC-Challenge the Hugging Face one.
yamls = {
    "arc_easy_local": (
        "arc_easy_test_genmc.jsonl",
        "Question: {{question.stem}}\\nAnswer:",
        "{{question.choices | map(attribute='text') | list}}",
        "{{(question.choices | map(attribute='label') | list).index(answerKey)}}",
    ),
    "arc_challenge_local": (
        "arc_challenge_test_hfformat_icml_kd.jsonl",
        "Question: {{question}}\\nAnswer:",
        "{{choices.text}}",
        "{{choices.label.index(answerKey)}}",
    ),
}
for name, (file, text, choice, target) in yamls.items():
    with open(os.path.join(out, "tasks", f"{name}.yaml"), "w") as fh:
        fh.write(
            f"""task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {os.path.join(data, file)}
output_type: multiple_choice
test_split: test
doc_to_text: "{text}"
doc_to_choice: "{choice}"
doc_to_target: "{target}"
metric_list:
  - metric: acc
  - metric: acc_norm
"""
        )

import lm_eval
from lm_eval.tasks import TaskManager

t0 = time.time()
res = lm_eval.simple_evaluate(
    model="hf",
    model_args=f"pretrained={hf},dtype=float32,device=cpu",
    tasks=list(yamls),
    num_fewshot=0,
    limit=n,
    batch_size=8,
    log_samples=True,
    task_manager=TaskManager(include_path=os.path.join(out, "tasks")),
)
harness_s = time.time() - t0

t0 = time.time()
hone_out = os.path.join(out, "hone")
subprocess.run(
    [hone, "eval", "-m", hf, "--task", os.path.join(root, "tasks", "arc_easy.toml"),
     "--task", os.path.join(root, "tasks", "arc_challenge.toml"), "--limit", str(n),
     "--set", "eval.limit_mode=first", "-o", hone_out, "-q"],
    check=True,
)
hone_s = time.time() - t0

summary = {"n": n, "harness_wall_s": round(harness_s, 1), "hone_wall_s": round(hone_s, 1), "tasks": {}}
for harness_name, hone_name in [("arc_easy_local", "arc_easy"), ("arc_challenge_local", "arc_challenge")]:
    samples = sorted(res["samples"][harness_name], key=lambda s: s["doc_id"])
    mine = json.load(open(os.path.join(hone_out, f"{hone_name}.json")))["items"]
    assert len(samples) == len(mine) == n, (len(samples), len(mine))
    same_acc = same_norm = 0
    worst = 0.0
    for s, m in zip(samples, mine):
        lls = [float(r[0]) for r in s["filtered_resps"]]
        mine_lls = [c["loglik"] for c in m["choices"]]
        assert len(lls) == len(mine_lls)
        for a, b in zip(lls, mine_lls):
            worst = max(worst, abs(a - b) / max(abs(a), 1e-9))
        same_acc += (s["acc"] == 1.0) == m["correct"] and max(range(len(lls)), key=lambda i: lls[i]) == m["pred"]
        same_norm += (s["acc_norm"] == 1.0) == m["correct_norm"]
    h = res["results"][harness_name]
    ours = json.load(open(os.path.join(hone_out, f"{hone_name}.json")))
    metric = lambda name: next(x["value"] for x in ours["metrics"] if x["name"] == name and not x.get("group"))
    summary["tasks"][hone_name] = {
        "harness_acc": h["acc,none"], "hone_acc": metric("acc"),
        "harness_acc_norm": h["acc_norm,none"], "hone_acc_norm": metric("acc_norm"),
        "same_prediction_acc": same_acc / n, "same_prediction_acc_norm": same_norm / n,
        "max_relative_loglik_difference": worst,
    }
print(json.dumps(summary, indent=2))
with open(os.path.join(out, "summary.json"), "w") as fh:
    json.dump(summary, fh, indent=2)
