"""``python -m deploy``: run the local infrastructure (Kafka, PostgreSQL), topics and migrations.

python -m deploy up                 # single Kafka broker + PostgreSQL + topics + migrations
python -m deploy down
python -m deploy status
python -m deploy kafka up|down|status [--cluster]
python -m deploy kafka kill|stop|start N       # one node of the 3-node cluster
python -m deploy postgres up|down|status
python -m deploy topics             # create missing topics, exit 1 on configuration drift
python -m deploy migrate            # apply SQL migrations to DATABASE_URL
"""

from deploy.cli import main

main()
