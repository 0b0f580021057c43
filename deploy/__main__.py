"""``python -m deploy``: run the local infrastructure (Kafka, PostgreSQL), topics and migrations.

python -m deploy up                 # single Kafka broker + PostgreSQL + topics + migrations
python -m deploy down
python -m deploy status
python -m deploy kafka up|down|status [--cluster]
python -m deploy kafka kill|stop|start N       # one node of the 3-node cluster
python -m deploy postgres up|down|status
python -m deploy topics             # create missing topics, exit 1 on configuration drift
python -m deploy migrate            # apply SQL migrations to DATABASE_URL
python -m deploy k8s topics write|check   # deploy/k8s/base/topics.yaml from schemas/topics.py
"""

from deploy.cli import main

main()
