"""The request log at a million rows, in PostgreSQL: do the admin's pages stay fast?

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/llm_gateway_bench \\
        .venv/bin/python bench/request_log_scale.py [--rows 1000000] [--keys 50] [--repeat 5]

Fills the request log with --rows rows over 60 days (generate_series, in the database) and
the daily rollups from them, as the writer keeps them, then times the admin's request list
(unfiltered, filtered by key, searched by request id), a key's usage page and the usage
overview with Django's test client, in process: the median of --repeat answers each, in ms.
The database is made if it is missing, and its rows are replaced on each run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def fill(rows: int, keys: int) -> None:
    from django.db import connection

    from llm_gateway.models import ApiKey, ErrorDaily, RequestLog, UsageDaily

    RequestLog.objects.all().delete()
    UsageDaily.objects.all().delete()
    ErrorDaily.objects.all().delete()
    ApiKey.objects.filter(name__startswith="scale-").delete()
    made = [ApiKey.create(f"scale-{i:03d}")[0] for i in range(keys)]
    first_id = made[0].pk
    table = RequestLog._meta.db_table
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (created_at, request_id, key_id, key_name, model, upstream,
                method, path, status, stream, prompt_tokens, completion_tokens, cached_tokens,
                usage_source, ttfb_ms, ttft_ms, duration_ms, ending, client)
            SELECT now() - (g * interval '60 days' / %s),
                   md5(g::text), %s + (g %% %s), 'scale-' || lpad((g %% %s)::text, 3, '0'),
                   (ARRAY['llama-3-8b', 'qwen-7b', 'mistral-7b'])[1 + g %% 3], 'http://e/v1',
                   'POST', '/chat/completions',
                   CASE WHEN g %% 50 = 0 THEN 502 ELSE 200 END, g %% 2 = 0,
                   100 + g %% 400, 20 + g %% 200, 0, 'engine', 5, 40, 900,
                   CASE WHEN g %% 50 = 0 THEN 'error:upstream_error' ELSE 'done' END,
                   '10.0.0.1'
            FROM generate_series(1, %s) AS g
            """,
            [rows, first_id, keys, keys, rows],
        )
        cursor.execute(
            f"""
            INSERT INTO {UsageDaily._meta.db_table} (key_id, key_name, model, day, requests,
                prompt_tokens, completion_tokens, cached_tokens, errors)
            SELECT min(key_id), key_name, model, (created_at AT TIME ZONE 'UTC')::date, count(*),
                   sum(prompt_tokens), sum(completion_tokens), 0,
                   sum(CASE WHEN ending LIKE 'error:%%' THEN 1 ELSE 0 END)
            FROM {table} GROUP BY key_name, model, (created_at AT TIME ZONE 'UTC')::date
            """
        )
        cursor.execute(
            f"""
            INSERT INTO {ErrorDaily._meta.db_table} (day, code, count)
            SELECT (created_at AT TIME ZONE 'UTC')::date, substr(ending, 7), count(*)
            FROM {table} WHERE ending LIKE 'error:%%' GROUP BY 1, 2
            """
        )
        cursor.execute(f"ANALYZE {table}")
    print(f"filled {rows:,} rows for {keys} keys in {time.monotonic() - started:.1f} s")


def timed(client, url: str, repeat: int, must: str) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        assert must in response.content.decode(), (url, must)
    return statistics.median(times[1:])  # the first warms the caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("DATABASE_URL must name a PostgreSQL database (see the docstring)")
    ensure_database(url)
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from llm_gateway.models import ApiKey, RequestLog

    call_command("migrate", verbosity=0)
    fill(args.rows, args.keys)
    admin, _ = User.objects.get_or_create(username="scale-admin", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    key = ApiKey.objects.get(name="scale-007")
    some_id = RequestLog.objects.filter(key=key).values_list("request_id", flat=True)[500]
    pages = [
        ("request list", "/admin/llm_gateway/requestlog/", "scale-0"),
        ("request list, one key", f"/admin/llm_gateway/requestlog/?key={key.pk}", key.name),
        ("request list, 502s", "/admin/llm_gateway/requestlog/?status=502", "upstream_error"),
        ("request by id", f"/admin/llm_gateway/requestlog/?q={some_id}", some_id),
        ("a key's usage page", f"/admin/llm_gateway/apikey/{key.pk}/change/", "Tokens per day"),
        ("usage overview", "/admin/llm_gateway/requestlog/usage/", "Top keys by tokens"),
    ]
    print(f"{RequestLog.objects.count():,} rows; median of {args.repeat} answers:")
    for name, page, must in pages:
        print(f"  {name:24s} {timed(client, page, args.repeat, must):8.1f} ms")
    started = time.perf_counter()
    call_command("usage_report", "--json", stdout=open(os.devnull, "w"))  # noqa: SIM115
    print(f"  {'usage_report --json':24s} {(time.perf_counter() - started) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
