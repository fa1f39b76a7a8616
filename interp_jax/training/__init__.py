"""Training: the objective, pure steps, the resumable loop, checkpoints and run loading.

    objective.py       the loss of METHOD.md section 3, read from a config
    steps.py           pure train and eval steps, built by factories
    trainer.py         train_and_evaluate(config, workdir): the loop
    checkpointing.py   Orbax checkpoints (state, data position, config)
    metric_writers.py  metrics.jsonl and TensorBoard event files
    restore.py         load_trained(workdir): what every later stage starts from
    imported.py        import_run: a run made of imported PyTorch weights; Imported,
                       its import.json
"""
