"""The reproduction of the paper's findings: runs trained, analysed and summarised.

    experiment.py   reproduce(config, workdir, analysis_cfg, criteria, seeds)
    findings.py     the three statements, computed from the numbers with fixed criteria
"""
