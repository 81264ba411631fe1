"""motwatch's dashboards, recording rules and alerts, from one source.

``definitions.py`` describes every panel (query, what it shows, what to look at
first) and every alert (expression, ``for``, severity, owner, summary,
description, what to look at first). ``python -m motwatch.monitoring`` writes
from it:

* ``grafana/dashboards/*.json``: three Grafana dashboards (overview, touchpoint
  health, pipeline), built with grafana-foundation-sdk;
* ``grafana/rules/motwatch.rules.yml``: Prometheus recording and alerting rules;
* ``grafana/provisioning/alerting/motwatch.yml``: the same alerts as Grafana-managed rules;
* ``grafana/PANELS_AND_ALERTS.md``: the table of panels and alerts for people;
* ``README.md``, between its two marker comments: the same table.

``python -m motwatch.monitoring --check`` writes nothing and fails if a
committed file differs from what the definitions give. The generator needs
the ``grafana-foundation-sdk`` and ``pyyaml`` packages (the test extra); the
worker does not import this package.
"""
