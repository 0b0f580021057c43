"""Running the pipeline: local Kafka and PostgreSQL launchers, topics, migrations, ``python -m deploy run``
and the generated deployment files. A tool on top of the stages: it may import ``schemas``, ``infra`` and
any stage; nothing imports it.
"""
