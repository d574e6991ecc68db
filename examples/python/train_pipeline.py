#!/usr/bin/env python3
"""examples/ml/pipeline.yaml written in Python with the drover package.

    python3 examples/python/train_pipeline.py            # prints the YAML
    python3 examples/python/train_pipeline.py --submit -p src=$PWD/examples/ml --wait \
        --url http://127.0.0.1:7080 --token "$DROVER_TOKEN"

The YAML it prints is examples/ml/pipeline.yaml without its comments
(tests/python/test_pipeline.py checks that): generate a data set, train one
model per learning rate (a fan-out, two at a time) and a baseline in
parallel, evaluate every model (fan-in), deploy only when the best beats
the baseline, notify at the end. Every `needs:` below is inferred from the
outputs each step reads.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import drover  # noqa: E402
from drover import item  # noqa: E402


def pipeline() -> drover.Pipeline:
    p = drover.Pipeline(
        "train-classifier",
        params={
            "rows": "4000",
            "epochs": "60",
            "lrs": '["0.05", "0.2", "0.8"]',
            "margin": "0.1",
            "src": "/usr/share/drover/examples/ml",  # where these scripts are
            "image": "",  # "" runs steps as processes
        },
        defaults={
            "retries": {"limit": 2, "backoff": "1s", "factor": 2},
            "timeout": "10m",
            "image": "{{params.image}}",
            "env": {"SRC": "{{params.src}}"},
        },
    )
    # Params and outputs reach the scripts through env, as "$VAR".
    generate = p.step(
        "generate",
        output_artifacts=["dataset"],
        env={"ROWS": p.params["rows"]},
        script='python3 "$SRC/generate.py" --rows "$ROWS" --out "$DROVER_OUTPUTS/dataset"',
    )
    train = p.step(
        "train",
        for_each=p.params["lrs"],
        parallelism=2,
        resources={"cpu": 1, "memory": "256Mi"},
        inputs={"data": generate.outputs["dataset"]},
        output_artifacts=["model"],
        env={"PYTHONUNBUFFERED": "1", "LR": item, "EPOCHS": p.params["epochs"]},
        script='mkdir -p "$DROVER_OUTPUTS/model"\n'
               'python3 "$SRC/train.py" --data "$DROVER_INPUTS/data" \\\n'
               '  --model "$DROVER_OUTPUTS/model/weights.json" --lr "$LR" --epochs "$EPOCHS"\n',
    )
    baseline = p.step(
        "baseline",
        inputs={"data": generate.outputs["dataset"]},
        output_params=["accuracy"],
        script='python3 "$SRC/baseline.py" --data "$DROVER_INPUTS/data"'
               ' --out "$DROVER_OUTPUTS/accuracy"',
    )
    evaluate = p.step(
        "evaluate",
        inputs={"data": generate.outputs["dataset"], "models": train.outputs["model"]},
        output_params=["best_lr", "better"],
        env={"BASELINE": baseline.outputs["accuracy"], "MARGIN": p.params["margin"]},
        script='python3 "$SRC/evaluate.py" --data "$DROVER_INPUTS/data"'
               ' --models "$DROVER_INPUTS/models" \\\n'
               '  --baseline "$BASELINE" --margin "$MARGIN" --outputs "$DROVER_OUTPUTS"\n',
    )
    p.step(
        "deploy",
        when=f"{evaluate.outputs['better']} == true",
        env={"LR": evaluate.outputs["best_lr"]},
        script='echo "deploying the model trained with lr $LR"',
    )
    p.on_exit(
        "notify",
        env={"NAME": "{{run.name}}", "STATUS": "{{run.status}}"},
        script='echo "run $DROVER_RUN_ID ($NAME) ended $STATUS"',
    )
    return p


if __name__ == "__main__":
    drover.main(pipeline())
