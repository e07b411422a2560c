"""A fixed small results table with replicates, whose statistics the tests work out by hand.

top1 on digits/test (percent):
    cell vit-fdb      (pretrain_source fdb_1k,   num_classes 16): replicates 0, 1, 2 = 88, 90, 95
    cell scratch-vit  (pretrain_source scratch,  no dataset)    : replicates 0, 1, 2 = 80, 84, 85
    cell vit-rcdb     (pretrain_source rcdb&50%, num_classes 8) : replicate  0       = 77.5
top5 rows (99 + replicate / 2) ride along so that the tests see that metrics are never mixed.
The pretrain source "rcdb&50%" and "fdb_1k" are hostile on purpose: LaTeX must escape & % _.
"""

from pretrainflow.results.rows import make_row

TOP1 = {
    "vit-fdb": ("fdb_1k", 16, [88.0, 90.0, 95.0]),
    "scratch-vit": ("scratch", None, [80.0, 84.0, 85.0]),
    "vit-rcdb": ("rcdb&50%", 8, [77.5]),
}


def replicate_rows() -> list[dict]:
    rows = []
    for cell, (source, classes, values) in TOP1.items():
        config = {"optimizer": {"name": "adamw", "lr": 0.001}}
        if classes is not None:
            config["dataset"] = {"num_classes": classes}
        for replicate, value in enumerate(values):
            run_id = f"{cell}.rep-{replicate}" if len(values) > 1 else cell
            common = dict(
                config={**config, "seed": replicate},
                run_id=run_id,
                cell=cell,
                replicate=replicate,
                stage="evaluate",
                model="vit_micro",
                pretrain_source=source,
                task="digits",
                split="test",
                seed=replicate,
            )
            rows.append(make_row(metric="top1", value=value, **common))
            rows.append(make_row(metric="top5", value=99.0 + replicate / 2, **common))
    return rows
