"""A tiny kopf operator, run for real with KopfRunner against the hardened emulator.

kopf runs in KopfRunner's own thread and event loop; the emulator keeps serving on the test's
loop, which is why the runner is left through `asyncio.to_thread` and never with a blocking `with`.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import kopf
import kubernetes
import pytest
import pytest_asyncio
from emulator import JSON_PATCH
from kopf.testing import KopfRunner
from polling import eventually, get

pytestmark = pytest.mark.asyncio

NS = 'smoke'
WIDGETS = f'/apis/test.tanuki.dev/v1/namespaces/{NS}/widgets'
CONFIGMAPS = f'/api/v1/namespaces/{NS}/configmaps'
FINALIZER = 'kopf.zalando.org/KopfFinalizerMarker'

registry = kopf.OperatorRegistry()
deleted: list[str] = []
# A registry of one's own starts without kopf's default login handlers: log in through the
# kubernetes client and $KUBECONFIG, as the default registry would.
kopf.on.login(registry=registry)(kopf.login_via_client)


@kopf.on.create('test.tanuki.dev', 'v1', 'widgets', registry=registry)
def create_child(body: kopf.Body, name: str, namespace: str, spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
    child = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': f'{name}-child'},
             'data': {'size': str(spec.get('size'))}}
    kopf.adopt(child, owner=body)
    kubernetes.config.load_kube_config()  # the same way the operator's k8s.py reaches the API
    with kubernetes.client.ApiClient() as client:
        kubernetes.client.CoreV1Api(client).create_namespaced_config_map(namespace, child)
    patch.status['phase'] = 'Ready'
    kopf.info(body, reason='ChildCreated', message=f'ConfigMap {name}-child')


@kopf.on.delete('test.tanuki.dev', 'v1', 'widgets', registry=registry)
def forget(name: str, **_: Any) -> None:
    deleted.append(name)


async def absent(api, path: str) -> bool:
    return (await api.get(path))[0] == 404


async def phase(api, name: str) -> str | None:
    widget = await get(api, f'{WIDGETS}/{name}')
    return (widget or {}).get('status', {}).get('phase')


async def events_about(api, name: str) -> list[dict[str, Any]]:
    _, lst = await api.get(f'/api/v1/namespaces/{NS}/events')
    return [e for e in lst['items'] if e['involvedObject']['name'] == name]


@pytest_asyncio.fixture(params=[f'--namespace={NS}'])
async def operator(request, emulator, kubeconfig, api) -> AsyncIterator[KopfRunner]:
    emulator.declare('test.tanuki.dev', 'v1', 'widgets', 'Widget')
    assert (await api.create('/api/v1/namespaces', {'metadata': {'name': NS}}))[0] == 201
    deleted.clear()
    runner = KopfRunner(['run', '--standalone', request.param, '--verbose'], registry=registry, timeout=30)
    runner.__enter__()  # only starts the thread
    try:
        yield runner
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)  # re-raises the operator's crash
    assert runner.exit_code == 0, runner.output
    assert 'Traceback' not in runner.output, runner.output


@pytest.mark.parametrize('operator', [f'--namespace={NS}', '--all-namespaces'], indirect=True)
async def test_create_makes_an_owned_child_and_sets_the_phase(operator, api, emulator):
    _, widget = await api.create(WIDGETS, {'metadata': {'name': 'w1'}, 'spec': {'size': 3}})
    child = await eventually(lambda: get(api, f'{CONFIGMAPS}/w1-child'))
    assert child['data'] == {'size': '3'}
    [owner] = child['metadata']['ownerReferences']
    assert (owner['kind'], owner['name'], owner['controller']) == ('Widget', 'w1', True)
    assert owner['uid'] == widget['metadata']['uid']
    assert (await eventually(lambda: phase(api, 'w1'))) == 'Ready'
    assert emulator.count('POST', CONFIGMAPS) == 1
    # kopf.info() posts a core v1 Event, named by generateName
    [event] = await eventually(lambda: events_about(api, 'w1'))
    assert (event['reason'], event['type'], event['message']) == ('ChildCreated', 'Normal', 'ConfigMap w1-child')
    assert event['metadata']['name'].startswith('kopf-event-')


async def test_delete_runs_the_handler_and_releases_the_finalizer(operator, api, emulator):
    await api.create(WIDGETS, {'metadata': {'name': 'w2'}, 'spec': {'size': 1}})
    await eventually(lambda: phase(api, 'w2'))
    assert FINALIZER in (await get(api, f'{WIDGETS}/w2'))['metadata']['finalizers']
    status, marked = await api.delete(f'{WIDGETS}/w2')
    assert status == 200 and marked['metadata']['deletionTimestamp']
    await eventually(lambda: absent(api, f'{WIDGETS}/w2'))
    assert deleted == ['w2']
    stored = emulator.objects['test.tanuki.dev/v1/widgets', NS, 'w2']
    assert stored.deleted and 'finalizers' not in stored.history[-2]['metadata']


async def test_a_failed_json_patch_precondition_is_retried(operator, api, emulator):
    # Right before the emulator serves kopf's first JSON patch of w3 (the finalizer, guarded by a
    # `test` of resourceVersion), someone else writes to w3: the test op fails for real with 422.
    interfered: list[int] = []

    def first_json_patch(request) -> bool:
        return (not interfered and request.method == 'PATCH' and request.name == 'w3'
                and request.headers.get('Content-Type', '').startswith(JSON_PATCH))

    async def interfere() -> None:
        interfered.append(1)
        status, _ = await api.patch(f'{WIDGETS}/w3', {'metadata': {'labels': {'touched': 'yes'}}})
        assert status == 200

    emulator[first_json_patch] >> interfere
    await api.create(WIDGETS, {'metadata': {'name': 'w3'}, 'spec': {'size': 2}})
    assert (await eventually(lambda: phase(api, 'w3'))) == 'Ready'
    assert interfered == [1]
    assert emulator.count('PATCH', f'{WIDGETS}/w3', status=422) == 1
    widget = await get(api, f'{WIDGETS}/w3')
    assert FINALIZER in widget['metadata']['finalizers'] and widget['metadata']['labels'] == {'touched': 'yes'}
    assert emulator.count('POST', CONFIGMAPS) == 1
