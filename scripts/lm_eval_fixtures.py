#!/usr/bin/env python3
"""Fixtures for hone's lm-evaluation-harness task files (tasks/hellaswag.toml, piqa.toml,
lambada_openai.toml, winogrande.toml, mmlu_continuation.toml): 20 records per task in the Hugging
Face dataset's schema (written here, with the quirks the harness's preprocessing handles), and the
harness's own rendering of every request (context, continuation) from its shipped task configs,
pointed at these files. hone's test renders the same records through its task files and compares.

    python scripts/lm_eval_fixtures.py crates/hone-eval/tests/fixtures/lm_eval
"""
import json
import os
import random
import tempfile
import sys

out = os.path.abspath(sys.argv[1])
os.makedirs(out, exist_ok=True)
rnd = random.Random(7)
words = "river mill stone garden lamp window bread kettle ladder rope candle meadow harbor bridge".split()


def sent(n):
    return " ".join(rnd.choice(words) for _ in range(n))


records = {
    "hellaswag": [
        {
            "ind": i,
            "activity_label": rnd.choice(["Making a sandwich", "Home and Garden", "Playing drums"]),
            "ctx_a": f"A person {sent(5)}." + (" [title] Step one." if i % 4 == 0 else ""),
            "ctx_b": rnd.choice(["then", "The man", "she"]) + " " + sent(3),
            "ctx": "",
            "endings": [sent(4) + (" [header] more" if (i + k) % 5 == 0 else "") + "." for k in range(4)],
            "source_id": f"src-{i}",
            "split": "val",
            "split_type": "indomain",
            "label": str(i % 4),
        }
        for i in range(20)
    ],
    "piqa": [{"goal": f"How do I {sent(4)}?", "sol1": sent(6), "sol2": sent(5), "label": i % 2} for i in range(20)],
    "lambada": [{"text": f"{sent(12)} said {rnd.choice(words)}"} for i in range(20)],
    "winogrande": [
        {
            "sentence": f"The {rnd.choice(words)} did not fit in the _ because it was {rnd.choice(['small', 'large'])}.",
            "option1": rnd.choice(words),
            "option2": rnd.choice(words),
            "answer": str(1 + i % 2),
        }
        for i in range(20)
    ],
    "mmlu": [
        {"question": f"  Which {sent(3)} is a {rnd.choice(words)}? ", "subject": "high_school_geography",
         "choices": [sent(2) for _ in range(4)], "answer": i % 4}
        for i in range(20)
    ],
    "mmlu_dev": [
        {"question": f"Which {sent(2)}?", "subject": "high_school_geography", "choices": [sent(1) for _ in range(4)],
         "answer": i % 4}
        for i in range(5)
    ],
}
for name, rows in records.items():
    with open(os.path.join(out, f"{name}.jsonl"), "w") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")

# The HellaSwag records again as Parquet (nested list column), as Hugging Face exports them.
import pyarrow as pa
import pyarrow.parquet as pq

pq.write_table(pa.Table.from_pylist(records["hellaswag"]), os.path.join(out, "hellaswag.parquet"))

import lm_eval
from lm_eval.tasks import TaskManager, get_task_dict

tasks_dir = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")
yaml_dir = tempfile.mkdtemp()
os.makedirs(yaml_dir, exist_ok=True)
specs = {
    "hellaswag": ("hellaswag/hellaswag.yaml", "validation", "hellaswag.jsonl", None),
    "piqa": ("piqa/piqa.yaml", "validation", "piqa.jsonl", None),
    "lambada_openai": ("lambada/lambada_openai.yaml", "test", "lambada.jsonl", None),
    "winogrande": ("winogrande/default.yaml", "validation", "winogrande.jsonl", None),
    "mmlu_continuation": ("mmlu/continuation/mmlu_high_school_geography.yaml", "test", "mmlu.jsonl", "mmlu_dev.jsonl"),
}
for name, (base, split, file, dev) in specs.items():
    # The harness opens a task's training split up front (its few-shot pool); the same file serves.
    files = {split: os.path.join(out, file), "train": os.path.join(out, file)}
    if dev:
        files["dev"] = os.path.join(out, dev)
    data_files = "".join(f"\n    {k}: {v}" for k, v in files.items())
    with open(os.path.join(yaml_dir, f"{name}_fixture.yaml"), "w") as fh:
        fh.write(
            f"include: {os.path.join(tasks_dir, base)}\ntask: {name}_fixture\ndataset_path: json\n"
            f"dataset_name: null\ndataset_kwargs:\n  data_files:{data_files}\n"
        )
tm = TaskManager(include_path=yaml_dir)
expected = {}
for name, shots in [("hellaswag", 0), ("piqa", 0), ("lambada_openai", 0), ("winogrande", 0), ("mmlu_continuation", 0),
                    ("mmlu_continuation", 5)]:
    task = get_task_dict([f"{name}_fixture"], tm)[f"{name}_fixture"]
    task.set_config(key="num_fewshot", value=shots)
    task.build_all_requests(limit=None, rank=0, world_size=1)
    reqs = sorted(task.instances, key=lambda r: (r.doc_id, r.idx))
    expected[f"{name}/{shots}"] = [{"doc": r.doc_id, "context": r.arguments[0], "continuation": r.arguments[1]} for r in reqs]
with open(os.path.join(out, "expected.json"), "w") as fh:
    json.dump(expected, fh, ensure_ascii=False, indent=0)
print({k: len(v) for k, v in expected.items()})
