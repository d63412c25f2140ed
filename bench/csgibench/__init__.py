"""csgi-bench as a package; bench/csgi-bench is its launcher.

Modules, in the order a run uses them:

- common: endpoints, targets and their order, load shapes, what each target is, logging
- build: set-up (tools, the release build, what it built)
- targets: discovering and selecting targets
- server: one server process, /proc readings, HTTP(S) checks and the keep-alive client
- tls: --tls, the certificate and TLS settings csgi-server and nginx share
- load: wrk runs (load mode)
- instructions: instructions per request (--instructions)
- stats: summaries of the runs (pure)
- markdown, svg, fmt: the tables, the charts, number formats (pure)
- compare: --compare (pure but for reading the files)
- output: results.{json,md,svg} and --render
- readme: the README's generated figures (--render-readme)
- cli: the command line

The pure parts are unit-tested by tests/bench/test_units.py.
"""
