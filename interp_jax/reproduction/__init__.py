"""The reproduction of the paper's findings: runs trained, analysed and summarised.

    experiment.py   reproduce(config, workdir): every setting from the config's sections
    summary.py      the Summary it returns and saves (summary.json), typed
    over_seeds.py   each variant's numbers over seeds: means, spreads, the differences
    stages.py       one run's analysis, dissection and tracing: run or reused, pages
                    written (the single-run commands call it too)
    reuse.py        whether a workdir's run is the one a config asks for
    findings.py     the three statements, computed from the numbers with fixed criteria
                    (protocol 1 there, protocol 2 in findings_v2.py)
    protocol.py     the protocol's checks, the analysis it fixes, Summary.protocol
    differences.py  the paired differences over seeds; intervals.py their t-intervals
    matched.py      consistency at matched attack success, off each model's eps sweep
    robust.py       the declared robust-gain evaluation (protocol 2)
    selection.py    the consistent loss chosen on validation; selection_rule.py its rules
    statements.py   the verdict rule and the words every statement shares
    comparison.py   models of several runs compared (the compare command); the
                    Comparison it returns and saves, typed, in comparison_results.py
"""
