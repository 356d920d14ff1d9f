"""The hardened emulator answers like a kube-apiserver: checked over plain HTTP."""
from __future__ import annotations

import asyncio
import re
import time
import uuid

import kubernetes
import pytest
from emulator import STRATEGIC_MERGE_PATCH

pytestmark = pytest.mark.asyncio

NS = '/api/v1/namespaces/default'
CMS = f'{NS}/configmaps'
WIDGETS = '/apis/test.tanuki.dev/v1/namespaces/default/widgets'
JOBS = '/apis/batch/v1/namespaces/default/jobs'


@pytest.fixture(autouse=True)
def widgets(emulator):
    emulator.declare('test.tanuki.dev', 'v1', 'widgets', 'Widget')
    emulator.declare('test.tanuki.dev', 'v1', 'gadgets', 'Gadget', status_subresource=False)


def widget(name='w1', **spec):
    return {'apiVersion': 'test.tanuki.dev/v1', 'kind': 'Widget', 'metadata': {'name': name},
            'spec': spec or {'size': 1}}


async def test_create_sets_server_metadata(api):
    status, obj = await api.create(WIDGETS, widget())
    assert status == 201
    meta = obj['metadata']
    assert uuid.UUID(meta['uid']).version == 4
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', meta['creationTimestamp'])
    assert meta['generation'] == 1
    assert isinstance(meta['resourceVersion'], str) and int(meta['resourceVersion']) > 0
    assert meta['namespace'] == 'default'
    assert (obj['apiVersion'], obj['kind']) == ('test.tanuki.dev/v1', 'Widget')
    assert (await api.get(f'{WIDGETS}/w1')) == (200, obj)


async def test_generate_name_gives_unique_names(api):
    names = set()
    for _ in range(3):
        status, obj = await api.create(CMS, {'metadata': {'generateName': 'run-'}})
        assert status == 201
        assert re.fullmatch(r'run-[a-z0-9]{5}', obj['metadata']['name'])
        names.add(obj['metadata']['name'])
    assert len(names) == 3


async def test_create_of_existing_name_is_409_already_exists(api):
    assert (await api.create(WIDGETS, widget()))[0] == 201
    status, body = await api.create(WIDGETS, widget(size=2))
    assert (status, body['kind'], body['reason']) == (409, 'Status', 'AlreadyExists')
    assert (await api.get(f'{WIDGETS}/w1'))[1]['spec'] == {'size': 1}


async def test_create_needs_an_existing_namespace(api):
    status, body = await api.create('/api/v1/namespaces/nowhere/configmaps', {'metadata': {'name': 'c'}})
    assert (status, body['reason']) == (404, 'NotFound')
    assert (await api.create('/api/v1/namespaces', {'metadata': {'name': 'nowhere'}}))[0] == 201
    assert (await api.create('/api/v1/namespaces/nowhere/configmaps', {'metadata': {'name': 'c'}}))[0] == 201


async def test_resource_version_is_one_global_counter(api):
    writes = [await api.create(WIDGETS, widget()),
              await api.create(CMS, {'metadata': {'name': 'c'}}),
              await api.patch(f'{WIDGETS}/w1', {'metadata': {'labels': {'a': 'b'}}}),
              await api.patch(f'{WIDGETS}/w1/status', {'status': {'phase': 'X'}})]
    rvs = [obj['metadata']['resourceVersion'] for _, obj in writes]
    assert all(isinstance(rv, str) for rv in rvs)
    assert [int(rv) - int(rvs[0]) for rv in rvs] == [0, 1, 2, 3]


async def test_noop_write_keeps_resource_version(api, emulator):
    _, obj = await api.create(WIDGETS, widget())
    status, same = await api.patch(f'{WIDGETS}/w1', {'spec': {'size': 1}})
    assert status == 200
    assert same['metadata']['resourceVersion'] == obj['metadata']['resourceVersion']


async def test_generation_counts_spec_changes_only(api):
    await api.create(WIDGETS, widget())
    _, obj = await api.patch(f'{WIDGETS}/w1', {'metadata': {'labels': {'a': 'b'}}})
    assert obj['metadata']['generation'] == 1
    _, obj = await api.patch(f'{WIDGETS}/w1/status', {'status': {'phase': 'Running'}})
    assert obj['metadata']['generation'] == 1
    _, obj = await api.patch(f'{WIDGETS}/w1', {'spec': {'size': 2}})
    assert obj['metadata']['generation'] == 2
    _, obj = await api.patch(f'{WIDGETS}/w1', {'spec': {'size': 3}})
    assert obj['metadata']['generation'] == 3


async def test_generation_without_status_subresource_counts_all_but_metadata(api):
    path = '/apis/test.tanuki.dev/v1/namespaces/default/gadgets'
    await api.create(path, {'metadata': {'name': 'g'}, 'spec': {'a': 1}, 'status': {'phase': 'New'}})
    _, obj = await api.patch(f'{path}/g', {'metadata': {'annotations': {'x': 'y'}}})
    assert obj['metadata']['generation'] == 1
    _, obj = await api.patch(f'{path}/g', {'status': {'phase': 'Done'}})
    assert (obj['status'], obj['metadata']['generation']) == ({'phase': 'Done'}, 2)
    assert (await api.patch(f'{path}/g/status', {'status': {}}))[0] == 404


async def test_json_patch_with_failing_test_op_is_422_and_changes_nothing(api):
    _, obj = await api.create(WIDGETS, widget())
    rv = obj['metadata']['resourceVersion']
    ops = [{'op': 'test', 'path': '/metadata/resourceVersion', 'value': str(int(rv) + 7)},
           {'op': 'add', 'path': '/metadata/finalizers', 'value': ['x/y']}]
    status, body = await api.json_patch(f'{WIDGETS}/w1', ops)
    assert (status, body['reason']) == (422, 'Invalid')
    assert (await api.get(f'{WIDGETS}/w1'))[1] == obj
    ops[0]['value'] = rv
    status, patched = await api.json_patch(f'{WIDGETS}/w1', ops)
    assert (status, patched['metadata']['finalizers']) == (200, ['x/y'])
    assert int(patched['metadata']['resourceVersion']) == int(rv) + 1


async def test_merge_patches_delete_on_null_and_replace_lists(api):
    await api.create(WIDGETS, widget(size=1, tags=['a', 'b'], extra={'k': 'v', 'z': 1}))
    _, obj = await api.patch(f'{WIDGETS}/w1', {'spec': {'tags': ['c'], 'extra': {'k': None}}})
    assert obj['spec'] == {'size': 1, 'tags': ['c'], 'extra': {'z': 1}}
    _, obj = await api.patch(f'{WIDGETS}/w1', {'spec': {'tags': ['d']}}, content_type=STRATEGIC_MERGE_PATCH)
    assert obj['spec']['tags'] == ['d']
    status, body = await api.patch(f'{WIDGETS}/w1', ['not', 'a', 'patch'], content_type='application/x-unknown')
    assert (status, body['reason']) == (415, 'UnsupportedMediaType')


APPLY = 'application/apply-patch+yaml'


def owners(obj):
    """Field path → manager, from managedFields (FieldsV1), for the assertions below."""
    from tanuki_operator.embedded import ssa

    return {'.'.join(path): manager for (manager, _, _), paths in ssa.owned(obj).items() for path in paths}


async def test_server_side_apply_creates_updates_prunes_and_keeps_other_managers_fields(api):
    path = f'{WIDGETS}/w1?fieldManager=op&force=true'
    status, obj = await api.patch(path, widget(size=1, tags=['a'], extra={'k': 'v'}), content_type=APPLY)
    assert status == 200 and obj['metadata']['generation'] == 1  # apply creates a missing object
    assert owners(obj)['spec.size'] == 'op' and owners(obj)['spec.extra.k'] == 'op'
    # someone else (merge patch as "kubectl") sets a field of their own
    status, obj = await api.patch(f'{WIDGETS}/w1?fieldManager=kubectl', {'spec': {'owner': 'team-a'}})
    assert owners(obj)['spec.owner'] == 'kubectl'
    # the next apply no longer sends extra: the applier's field goes, the other manager's stays
    status, obj = await api.patch(path, widget(size=2, tags=['a']), content_type=APPLY)
    assert status == 200 and obj['spec'] == {'size': 2, 'tags': ['a'], 'owner': 'team-a'}
    assert obj['metadata']['generation'] == 3  # each spec change: the patch, then this apply
    # the same apply again changes nothing: same resourceVersion
    _, again = await api.patch(path, widget(size=2, tags=['a']), content_type=APPLY)
    assert again['metadata']['resourceVersion'] == obj['metadata']['resourceVersion']
    # without force, taking another manager's field with another value is a 409 naming it
    status, body = await api.patch(f'{WIDGETS}/w1?fieldManager=op', widget(size=2, tags=['a'], owner='team-b'),
                                   content_type=APPLY)
    assert (status, body['reason']) == (409, 'Conflict') and 'kubectl' in body['message']
    status, obj = await api.patch(path, widget(size=2, tags=['a'], owner='team-b'), content_type=APPLY)
    assert status == 200 and owners(obj)['spec.owner'] == 'op'  # forced: now the applier's
    status, body = await api.patch(f'{WIDGETS}/w1', widget(), content_type=APPLY)
    assert status == 422 and 'field manager' in body['message']


async def test_deleting_an_owner_collects_its_dependents(api):
    _, owner = await api.create(WIDGETS, widget())
    reference = {'apiVersion': 'test.tanuki.dev/v1', 'kind': 'Widget', 'name': 'w1', 'uid': owner['metadata']['uid'],
                 'controller': True}
    assert (await api.create(CMS, {'metadata': {'name': 'child', 'ownerReferences': [reference]}}))[0] == 201
    assert (await api.create(CMS, {'metadata': {'name': 'bystander'}}))[0] == 201
    assert (await api.delete(f'{WIDGETS}/w1'))[0] == 200
    assert (await api.get(f'{CMS}/child'))[0] == 404
    assert (await api.get(f'{CMS}/bystander'))[0] == 200


async def test_status_subresource_is_separate(api):
    _, obj = await api.create(WIDGETS, {**widget(), 'status': {'phase': 'Forged'}})
    assert 'status' not in obj
    _, obj = await api.patch(f'{WIDGETS}/w1', {'spec': {'size': 5}, 'status': {'phase': 'Ignored'}})
    assert (obj['spec'], 'status' in obj) == ({'size': 5}, False)
    rv = obj['metadata']['resourceVersion']
    _, obj = await api.patch(f'{WIDGETS}/w1/status', {'spec': {'size': 9}, 'metadata': {'labels': {'a': 'b'}},
                                                     'status': {'phase': 'Running'}})
    assert obj['status'] == {'phase': 'Running'}
    assert obj['spec'] == {'size': 5} and 'labels' not in obj['metadata']
    assert int(obj['metadata']['resourceVersion']) == int(rv) + 1
    assert obj['metadata']['generation'] == 2
    status, fetched = await api.get(f'{WIDGETS}/w1/status')
    assert (status, fetched) == (200, obj)


async def test_put_with_stale_resource_version_is_409_conflict(api):
    _, obj = await api.create(WIDGETS, widget())
    _, newer = await api.patch(f'{WIDGETS}/w1', {'spec': {'size': 2}})
    stale = {**obj, 'spec': {'size': 3}}
    status, body = await api.replace(f'{WIDGETS}/w1', stale)
    assert (status, body['reason']) == (409, 'Conflict')
    assert (await api.get(f'{WIDGETS}/w1'))[1]['spec'] == {'size': 2}
    status, replaced = await api.replace(f'{WIDGETS}/w1', {**newer, 'spec': {'size': 4}})
    assert (status, replaced['spec'], replaced['metadata']['generation']) == (200, {'size': 4}, 3)
    assert replaced['metadata']['uid'] == obj['metadata']['uid']
    # a merge patch carrying a resourceVersion is a precondition too
    stale_rv = obj['metadata']['resourceVersion']
    assert (await api.patch(f'{WIDGETS}/w1', {'metadata': {'resourceVersion': stale_rv}}))[0] == 409


async def test_delete_with_finalizers_waits_for_the_last_one(api, emulator):
    await api.create(WIDGETS, {**widget(), 'metadata': {'name': 'w1', 'finalizers': ['a/x', 'b/y']}})
    status, obj = await api.delete(f'{WIDGETS}/w1')
    assert status == 200
    assert obj['metadata']['deletionTimestamp'] and obj['metadata']['finalizers'] == ['a/x', 'b/y']
    assert (await api.get(f'{WIDGETS}/w1'))[1] == obj
    assert (await api.delete(f'{WIDGETS}/w1'))[1] == obj  # deleting again changes nothing
    status, body = await api.patch(f'{WIDGETS}/w1', {'metadata': {'finalizers': ['a/x', 'b/y', 'c/z']}})
    assert (status, body['reason']) == (422, 'Invalid')
    _, obj = await api.patch(f'{WIDGETS}/w1', {'metadata': {'finalizers': ['b/y']}})
    assert obj['metadata']['finalizers'] == ['b/y']
    assert (await api.get(f'{WIDGETS}/w1'))[0] == 200
    status, last = await api.json_patch(f'{WIDGETS}/w1', [{'op': 'remove', 'path': '/metadata/finalizers'}])
    assert status == 200 and 'finalizers' not in last['metadata']
    assert (await api.get(f'{WIDGETS}/w1'))[0] == 404
    assert emulator.objects['test.tanuki.dev/v1/widgets', 'default', 'w1'].deleted


async def test_delete_without_finalizers_is_immediate(api):
    _, obj = await api.create(WIDGETS, widget())
    status, body = await api.delete(f'{WIDGETS}/w1')
    assert (status, body['kind'], body['status']) == (200, 'Status', 'Success')
    assert body['details']['uid'] == obj['metadata']['uid']
    assert (await api.get(f'{WIDGETS}/w1'))[0] == 404
    assert (await api.delete(f'{WIDGETS}/w1'))[0] == 404


async def test_lists_namespaced_and_across_namespaces(api):
    await api.create('/api/v1/namespaces', {'metadata': {'name': 'other'}})
    for ns in ('default', 'other'):
        await api.create(f'/api/v1/namespaces/{ns}/configmaps', {'metadata': {'name': f'c-{ns}'}})
        await api.create(f'/apis/test.tanuki.dev/v1/namespaces/{ns}/widgets', widget(f'w-{ns}'))
    status, lst = await api.get(CMS)
    assert (status, [i['metadata']['name'] for i in lst['items']]) == (200, ['c-default'])
    assert (lst['kind'], lst['apiVersion']) == ('ConfigMapList', 'v1')
    _, lst = await api.get('/api/v1/configmaps')
    assert [i['metadata']['name'] for i in lst['items']] == ['c-default', 'c-other']
    _, lst = await api.get('/apis/test.tanuki.dev/v1/namespaces/other/widgets')
    assert [i['metadata']['name'] for i in lst['items']] == ['w-other']
    _, lst = await api.get('/apis/test.tanuki.dev/v1/widgets')
    assert (lst['kind'], lst['apiVersion']) == ('WidgetList', 'test.tanuki.dev/v1')
    assert [i['metadata']['name'] for i in lst['items']] == ['w-default', 'w-other']
    assert lst['metadata']['resourceVersion'] == max(i['metadata']['resourceVersion'] for i in lst['items'])


async def test_label_selectors_filter_lists_and_watches(api):
    await api.create(CMS, {'metadata': {'name': 'a', 'labels': {'app': 'x', 'tier': 'db'}}})
    await api.create(CMS, {'metadata': {'name': 'b', 'labels': {'app': 'x'}}})
    await api.create(CMS, {'metadata': {'name': 'c'}})
    _, lst = await api.get(f'{CMS}?labelSelector=app%3Dx')
    assert [i['metadata']['name'] for i in lst['items']] == ['a', 'b']
    _, lst = await api.get(f'{CMS}?labelSelector=app%3Dx,tier!%3Ddb')
    assert [i['metadata']['name'] for i in lst['items']] == ['b']
    events = await api.watch(CMS, count=1, labelSelector='tier=db')
    assert [e['object']['metadata']['name'] for e in events] == ['a']


async def test_pod_logs_are_served_as_text_with_a_tail(api, emulator):
    await api.create('/api/v1/namespaces/default/pods', {'metadata': {'name': 'p'}})
    emulator.pod_logs['default', 'p'] = 'one\ntwo\nthree\n'
    async with emulator.get('/api/v1/namespaces/default/pods/p/log', params={'tailLines': '2'}) as rsp:
        assert (rsp.status, await rsp.text()) == (200, 'two\nthree\n')
    assert (await api.get('/api/v1/namespaces/default/pods/absent/log'))[0] == 404


async def test_namespaces_are_a_cluster_scoped_resource(api):
    status, lst = await api.get('/api/v1/namespaces')
    assert (status, lst['kind']) == (200, 'NamespaceList')
    assert [i['metadata']['name'] for i in lst['items']] == ['default', 'kube-system']
    status, ns = await api.create('/api/v1/namespaces', {'metadata': {'name': 'team-a'}})
    assert (status, ns['status'], 'namespace' in ns['metadata']) == (201, {'phase': 'Active'}, False)
    assert (await api.get('/api/v1/namespaces/team-a'))[1] == ns
    assert (await api.get('/api/v1/namespaces/absent'))[0] == 404


async def test_watch_streams_changes_after_a_resource_version(api):
    _, lst = await api.get(WIDGETS)
    since = lst['metadata']['resourceVersion']
    watching = asyncio.create_task(api.watch(WIDGETS, count=3, resourceVersion=since))
    _, created = await api.create(WIDGETS, widget())
    await api.create('/apis/test.tanuki.dev/v1/namespaces/kube-system/widgets', widget('elsewhere'))
    _, modified = await api.patch(f'{WIDGETS}/w1', {'spec': {'size': 2}})
    await api.delete(f'{WIDGETS}/w1')
    events = await watching
    assert [e['type'] for e in events] == ['ADDED', 'MODIFIED', 'DELETED']
    assert events[0]['object'] == created and events[1]['object'] == modified
    assert int(events[2]['object']['metadata']['resourceVersion']) > int(modified['metadata']['resourceVersion'])
    # without a resourceVersion, the stream starts with the current state as ADDED
    events = await api.watch('/apis/test.tanuki.dev/v1/widgets', count=1)
    assert [(e['type'], e['object']['metadata']['name']) for e in events] == [('ADDED', 'elsewhere')]


async def test_watch_ends_after_timeout_seconds(api):
    started = time.monotonic()
    assert await api.watch(CMS, count=1, timeoutSeconds='1') == []
    assert 0.9 < time.monotonic() - started < 3


async def test_discovery_lists_declared_resources_and_subresources(api, emulator):
    _, core = await api.get('/api/v1')
    resources = {r['name']: r for r in core['resources']}
    assert core['groupVersion'] == 'v1'
    assert {'namespaces', 'namespaces/status', 'configmaps', 'services', 'pods', 'events'} <= set(resources)
    assert resources['namespaces']['namespaced'] is False and resources['pods']['namespaced'] is True
    assert {'watch', 'list', 'patch'} <= set(resources['configmaps']['verbs'])
    _, groups = await api.get('/apis')
    names = {g['name'] for g in groups['groups']}
    assert {'batch', 'apps', 'autoscaling', 'apiextensions.k8s.io', 'test.tanuki.dev'} <= names
    _, apps = await api.get('/apis/apps/v1')
    assert {r['name'] for r in apps['resources']} == {'deployments', 'deployments/status', 'deployments/scale'}
    _, hpa = await api.get('/apis/autoscaling/v2')
    assert hpa['resources'][0]['kind'] == 'HorizontalPodAutoscaler'
    _, custom = await api.get('/apis/test.tanuki.dev/v1')
    assert {r['name'] for r in custom['resources']} == {'widgets', 'widgets/status', 'gadgets'}
    assert (await api.get('/apis/nothing.here/v1'))[0] == 404
    assert (await api.get('/apis/nothing.here/v1/things?watch=true'))[0] == 404


async def test_a_posted_crd_is_served(api):
    crd = {'metadata': {'name': 'things.demo.tanuki.dev'},
           'spec': {'group': 'demo.tanuki.dev', 'scope': 'Cluster', 'names': {'plural': 'things', 'kind': 'Thing'},
                    'versions': [{'name': 'v1alpha1', 'served': True, 'subresources': {'status': {}}}]}}
    assert (await api.get('/apis/demo.tanuki.dev/v1alpha1/things'))[0] == 404
    assert (await api.create('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd))[0] == 201
    status, thing = await api.create('/apis/demo.tanuki.dev/v1alpha1/things',
                                     {'metadata': {'name': 't'}, 'status': {'x': 1}})
    assert (status, thing['kind'], 'status' in thing) == (201, 'Thing', False)


async def test_requests_are_recorded(api, emulator):
    await api.create(JOBS, {'metadata': {'name': 'a'}})
    await api.create(JOBS, {'metadata': {'name': 'a'}})
    await api.create(JOBS, {'metadata': {'name': 'b'}})
    assert emulator.count('POST', JOBS) == 3
    assert emulator.count('POST', JOBS, status=409) == 1
    assert emulator.count('GET', re.compile(r'.*/jobs.*')) == 0


async def test_a_reaction_answers_instead_of_the_emulator(api, emulator):
    emulator[f'post {JOBS}'] << 503 << {'kind': 'Status', 'code': 503}
    status, _ = await api.create(JOBS, {'metadata': {'name': 'a'}})
    assert status == 503
    assert (await api.get(f'{JOBS}/a'))[0] == 404


async def test_kubeconfig_points_the_kubernetes_client_here(kubeconfig, api):
    # the sync client blocks, so it runs in a thread while the emulator serves on this loop
    def namespaces() -> list[str]:
        kubernetes.config.load_kube_config()
        with kubernetes.client.ApiClient() as client:
            return [ns.metadata.name for ns in kubernetes.client.CoreV1Api(client).list_namespace().items]

    assert await asyncio.to_thread(namespaces) == ['default', 'kube-system']
