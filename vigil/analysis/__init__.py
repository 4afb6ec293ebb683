"""Analysis over the record (vigil.record): searches in the rules language and backtests of candidate rules.

    query.py     a query → checked, compiled predicate over stored events, and the filters it pushes down
    search.py    running a query over a record: pages newest first, top values, counts per hour or day
    backtest.py  a candidate rules set replayed over stored events, compared with the decisions held
    report.py    a backtest as JSON and as a self-contained HTML page
    cli.py       `vigil search` and `vigil backtest`

A client of the core and the record, as vigil.eval is: nothing in the core imports it.
"""
