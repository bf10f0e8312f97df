import time
from tests.tcp_proxy import TcpProxy
from db.connection import connection, connect, transaction
from db.errors import DatabaseError, is_transient
import pytest

def test_probe(base_settings):
    with TcpProxy(base_settings.db_host, base_settings.db_port) as proxy:
        s = base_settings.model_copy(update={"db_port": proxy.port})
        conn = connect(s, with_database=False)
        with transaction(conn) as cur:
            cur.execute("SELECT 1"); print(cur.fetchall())
        t=time.perf_counter(); proxy.outage(); print("outage", time.perf_counter()-t)
        try:
            with transaction(conn) as cur:
                cur.execute("SELECT 1"); print(cur.fetchall())
        except Exception as e:
            print("old conn:", type(e), getattr(e,'errno',None), e, is_transient(e))
        try:
            connect(s, with_database=False)
        except DatabaseError as e:
            print("new:", type(e), e)
        proxy.restore()
        conn = connect(s, with_database=False)
        with transaction(conn) as cur:
            cur.execute("SELECT 2"); print(cur.fetchall())
        print(proxy.accepted, proxy.open_connections)
        conn.close()
    t=time.perf_counter()
