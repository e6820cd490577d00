"""profkit's Locust task mix for `profkit serve`.

`profkit load --locust` runs this file in Locust's distributed mode (one
master, N workers). To scale past one machine, start the master yourself and
more workers on other hosts:

    locust -f scripts/locustfile.py --master --headless --expect-workers 8 \
        -u 400 -r 40 -t 2m --host http://SERVER:8080 --csv run/locust
    locust -f scripts/locustfile.py --worker --master-host MASTER   # on each load host

The weights mirror the `mixed` workload (mostly point reads, some inserts)
plus the slow twins' endpoints at low weight. Override them with a JSON
object in $PROFKIT_MIX (what `profkit load --mix FILE` passes), e.g.
{"read_email": 10, "insert": 0}.
"""

import json
import os
import random

from locust import FastHttpUser, constant

DEFAULT_MIX = {
    "read_email": 60,
    "insert": 15,
    "random_emails": 4,
    "search_sender": 6,
    "search_fts": 5,
    "search_like": 1,
    "aggregate": 4,
    "recent_batched": 4,
    "recent_n_plus_one": 1,
}
MIX = {**DEFAULT_MIX, **json.loads(os.environ.get("PROFKIT_MIX") or "{}")}


def _tenant(user):
    return random.randint(1, user.info["tenants"])


def read_email(user):
    # Tenants with no ids yet (a tiny dataset) are skipped.
    tenants = [t for t, ids in enumerate(user.info["ids_by_tenant"], 1) if ids]
    t = random.choice(tenants)
    email_id = random.choice(user.info["ids_by_tenant"][t - 1])
    user.client.get(f"/api/tenants/{t}/emails/{email_id}", name="/api/tenants/[t]/emails/[id]")


def insert(user):
    user.client.post(f"/api/tenants/{_tenant(user)}/emails", name="/api/tenants/[t]/emails")


def random_emails(user):
    user.client.get("/api/random-emails?k=20", name="/api/random-emails")


def search_sender(user):
    sender = random.choice(user.info["senders"])
    user.client.get(
        f"/api/tenants/{_tenant(user)}/search/sender",
        params={"q": sender, "limit": 50},
        name="/api/tenants/[t]/search/sender",
    )


def search_fts(user):
    code = random.choice(user.info["codes"])
    user.client.get(
        f"/api/tenants/{_tenant(user)}/search/fts",
        params={"q": code},
        name="/api/tenants/[t]/search/fts",
    )


def search_like(user):
    code = random.choice(user.info["codes"])
    user.client.get(
        f"/api/tenants/{_tenant(user)}/search/like",
        params={"q": code},
        name="/api/tenants/[t]/search/like",
    )


def aggregate(user):
    user.client.get(f"/api/tenants/{_tenant(user)}/senders/top", name="/api/tenants/[t]/senders/top")


def recent_batched(user):
    user.client.get(f"/api/tenants/{_tenant(user)}/recent/batched", name="/api/tenants/[t]/recent/batched")


def recent_n_plus_one(user):
    user.client.get(
        f"/api/tenants/{_tenant(user)}/recent/n-plus-one", name="/api/tenants/[t]/recent/n-plus-one"
    )


TASKS = {
    read_email: MIX["read_email"],
    insert: MIX["insert"],
    random_emails: MIX["random_emails"],
    search_sender: MIX["search_sender"],
    search_fts: MIX["search_fts"],
    search_like: MIX["search_like"],
    aggregate: MIX["aggregate"],
    recent_batched: MIX["recent_batched"],
    recent_n_plus_one: MIX["recent_n_plus_one"],
}


class ProfkitUser(FastHttpUser):
    """A closed-loop user: the next request as soon as the last answers."""

    wait_time = constant(0)
    tasks = {task: weight for task, weight in TASKS.items() if weight > 0}

    def on_start(self):
        self.info = self.client.get("/api/info", name="/api/info").json()
