"""The Faust shell: the app, its topics, tables and consumer, the metrics, the worker."""
