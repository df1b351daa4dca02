"""The service passes on an algorithm's wait: fewer assignments, not exhausted, is no error.

pbt answers with fewer assignments than asked while members wait for the one
behind them; the service must answer 200 with what it has (the operator asks
again later), not treat the short reply as a broken contract.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from kubesweep.suggestion.service import Settings, create_app

PBT_REQUEST: dict[str, Any] = {
    "space": {
        "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
        "fidelity": {"parameter": "epochs", "min": 1, "max": 3},
    },
    "algorithm": {"name": "pbt", "seed": 1, "settings": {"populationSize": 2}},
    "trials": [
        {
            "name": "t0",
            "parameters": {"x": 0.2},
            "fidelity": 1,
            "state": "completed",
            "value": 0.1,
            "tags": {"member": "0", "generation": "0"},
        },
        {
            "name": "t1",
            "parameters": {"x": 0.7},
            "fidelity": 1,
            "state": "pending",
            "tags": {"member": "1", "generation": "0"},
        },
        {
            "name": "t2",
            "parameters": {"x": 0.2},
            "fidelity": 2,
            "state": "completed",
            "value": 0.05,
            "tags": {"member": "0", "generation": "1", "parent": "t0"},
        },
    ],
    "count": 2,
}


async def test_a_waiting_pbt_gets_a_short_reply_that_is_not_exhausted() -> None:
    settings = Settings(executor="thread", workers=1, metrics_port=0)
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        response = await client.post("/v1/suggest", json=PBT_REQUEST)
        assert response.status == 200, await response.text()
        assert await response.json() == {"assignments": [], "exhausted": False}
    finally:
        await client.close()
