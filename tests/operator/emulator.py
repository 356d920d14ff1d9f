"""kmock's KubernetesEmulator, hardened to answer like a kube-apiserver for kopf and our operator.

kmock 0.8 stores objects as plain dicts and merges every write into them. This subclass keeps
kmock's storage (``emulator.objects``, with full history), its discovery endpoints, its error
rendering and its DSL reactions, and replaces the write path and the list/watch serving with
apiserver semantics. Each behaviour is marked with the API-server behaviour it imitates.

Writes are applied by the *fallback* handlers, so a test reaction registered on the emulator
(``emulator[criteria] << 503``) answers instead of the emulator, without changing any state;
a side effect (``emulator[criteria] >> fn``) runs before the emulator serves the request.

Equality-based label selectors filter lists and watches. Server-side apply and field managers
(``metadata.managedFields``) follow ``ssa.py``; a served CRD's ``x-kubernetes-validations`` (CEL)
are enforced on writes (``cel_rules.py``); deleting an object deletes its dependents (garbage
collection by ownerReferences, in the background as the default propagation does). Still absent:
defaulting, OpenAPI schema validation, set-based and field selectors, the scale subresource's own
endpoint, controllers of any kind.
"""
from __future__ import annotations

import asyncio
import bisect
import datetime
import pickle
import random
import re
import uuid
from typing import Any

import attrs
import cel_rules
import jsonpatch
import jsonpointer
import kmock
from kmock._internal import parsing

from tanuki_operator.embedded import ssa


def _copy(obj: Any) -> Any:
    # objects are plain JSON data: a pickle round trip copies them several times faster than deepcopy
    return pickle.loads(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))


JSON_PATCH = 'application/json-patch+json'
MERGE_PATCH = 'application/merge-patch+json'
STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json'
APPLY_PATCH = 'application/apply-patch+yaml'
VERBS = {'create', 'delete', 'get', 'list', 'patch', 'update', 'watch'}
NAMESPACES = kmock.resource('', 'v1', 'namespaces')
CRDS = kmock.resource('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')
NOT_ALLOWED = 'the server does not allow this method on the requested resource'

# (group, version, plural, kind, namespaced, status subresource, scale subresource)
BUILTINS = [
    ('', 'v1', 'namespaces', 'Namespace', False, True, False),
    ('', 'v1', 'configmaps', 'ConfigMap', True, False, False),
    ('', 'v1', 'secrets', 'Secret', True, False, False),
    ('', 'v1', 'services', 'Service', True, True, False),
    ('', 'v1', 'pods', 'Pod', True, True, False),
    ('', 'v1', 'events', 'Event', True, False, False),
    ('', 'v1', 'serviceaccounts', 'ServiceAccount', True, False, False),
    ('rbac.authorization.k8s.io', 'v1', 'roles', 'Role', True, False, False),
    ('rbac.authorization.k8s.io', 'v1', 'rolebindings', 'RoleBinding', True, False, False),
    ('batch', 'v1', 'jobs', 'Job', True, True, False),
    ('apps', 'v1', 'deployments', 'Deployment', True, True, True),
    ('autoscaling', 'v2', 'horizontalpodautoscalers', 'HorizontalPodAutoscaler', True, True, False),
    ('networking.k8s.io', 'v1', 'networkpolicies', 'NetworkPolicy', True, False, False),
    ('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', False, True, False),
]

# kmock 0.8's parse_path fails on `/api/v1/namespaces` (it unpacks a namespace that is not there)
# and reads `/api/v1/namespaces/NAME` as a namespace scope: route the cluster-scoped core
# `namespaces` resource (whose URLs start like a namespace scope) here, everything else to kmock.
_NAMESPACE_PATH = re.compile(r'/api/v1/namespaces(?:/(?P<name>[^/]+)(?:/(?P<sub>status|finalize))?)?/?')
_kmock_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    if m := _NAMESPACE_PATH.fullmatch(path):
        return parsing.ParsedPath('', 'v1', 'namespaces', None, m['name'], m['sub'])
    return _kmock_parse_path(path)


if getattr(parsing.parse_path, '__module__', None) != __name__:
    parsing.parse_path = _parse_path  # kmock's Request._parse looks it up on the module per request


def _error(code: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    # Failures come back as a `kind: Status` body with code/reason, as the apiserver sends them.
    return kmock.KubernetesError(status=code, reason=reason, message=message, details=details or {'causes': []})


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def _merge(target: Any, patch: Any) -> Any:
    # RFC 7386 JSON merge patch: dicts merge recursively, null deletes a key, anything else replaces.
    if not isinstance(patch, dict):
        return _copy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _api_version(resource: kmock.resource) -> str:
    return f'{resource.group}/{resource.version}' if resource.group else resource.version


@attrs.define
class Call:
    """One request as it arrived, with the status it was answered with (None while streaming)."""
    method: str
    path: str
    params: dict[str, str]
    status: int | None = None


@attrs.define(kw_only=True)
class HardenedEmulator(kmock.KubernetesEmulator):
    builtins: bool = True  # declare BUILTINS and create the `default` and `kube-system` namespaces
    calls: list[Call] = attrs.field(factory=list, init=False)
    _rv: int = attrs.field(default=0, init=False)
    _events: list[tuple[int, kmock.resource, str | None, str, dict[str, Any]]] = attrs.field(factory=list, init=False)
    _changed: asyncio.Condition = attrs.field(factory=asyncio.Condition, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    request_history: int | None = None
    """Keep only this many past requests for kmock's DSL (None: all). kmock re-filters its whole
    request history on every request, O(n²) over a long run; the benchmark bounds it."""
    pod_logs: dict[tuple[str, str], str] = attrs.field(factory=dict, init=False)
    """(namespace, pod) → container output, served at pods/NAME/log as the kubelet would."""
    validations: dict[kmock.resource, list] = attrs.field(factory=dict, init=False)
    """The CEL rules of served CRDs, by the resource they serve."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback[kmock.method.PUT] << self._serve_replace  # kmock maps no action to PUT
        if self.builtins:
            for group, version, plural, kind, namespaced, status, scale in BUILTINS:
                self.declare(group, version, plural, kind, namespaced=namespaced,
                             status_subresource=status, scale_subresource=scale, log_subresource=plural == 'pods')
            for name in ('default', 'kube-system'):  # every cluster starts with these namespaces
                self._create(NAMESPACES, None, {'metadata': {'name': name}})

    def declare(self, group: str, version: str, plural: str, kind: str, *, namespaced: bool = True,
                status_subresource: bool = True, scale_subresource: bool = False,
                log_subresource: bool = False) -> kmock.resource:
        """Serve a resource (built-in or custom); it appears in discovery with its subresources."""
        resource = kmock.resource(group, version, plural)
        subresources = {sub for sub, on in (('status', status_subresource), ('scale', scale_subresource),
                                            ('log', log_subresource)) if on}
        self.resources[resource] = kmock.ResourceInfo(
            kind=kind, singular=kind.lower(), namespaced=namespaced, verbs=VERBS, subresources=subresources)
        return resource

    # ---- bookkeeping -----------------------------------------------------------------------------

    async def __call__(self, raw_request: Any) -> Any:
        call = Call(raw_request.method, raw_request.path, dict(raw_request.query))
        self.calls.append(call)
        response = await super().__call__(raw_request)
        call.status = response.status
        if self.request_history is not None:
            del self._requests[:-self.request_history]
            for payload in self._payloads:
                del payload._requests[:-self.request_history]
        return response

    def count(self, method: str, path: str | re.Pattern[str], status: int | None = None) -> int:
        """How many requests matched METHOD and the full path (a string or a regexp), and status if given."""
        pattern = path if isinstance(path, re.Pattern) else re.compile(re.escape(path))
        return sum(1 for c in self.calls if c.method == method.upper() and pattern.fullmatch(c.path)
                   and status in (None, c.status))

    async def _handle(self, request: kmock.Request) -> Any:
        # Skip KubernetesEmulator._handle: its write interceptor is replaced by the fallbacks below.
        return await super(kmock.KubernetesEmulator, self)._handle(request)

    async def close_watches(self) -> None:
        """End every open watch stream (for teardown, as the apiserver does when it shuts down)."""
        async with self._changed:
            self._closing = True
            self._changed.notify_all()

    def _info(self, request: kmock.Request) -> kmock.ResourceInfo:
        # Undeclared resources are 404 like unknown URLs; cluster-scoped kinds have no namespaced URLs.
        if request.resource is None or request.resource not in self.resources:
            raise _error(404, 'NotFound', 'the server could not find the requested resource')
        info = self.resources[request.resource]
        if request.namespace is not None and not info.namespaced:
            raise _error(404, 'NotFound', 'the server could not find the requested resource')
        if request.subresource is not None and request.subresource not in info.subresources:
            raise _error(404, 'NotFound', f'the server could not find the requested resource ({request.subresource})')
        if request.subresource == 'scale':  # advertised in discovery only: no Scale objects here
            raise _error(405, 'MethodNotAllowed', 'the scale subresource is not emulated')
        return info

    def _current(self, resource: kmock.resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = self._objects[resource, namespace, name] if (resource, namespace, name) in self._objects else None
        return None if obj is None or obj.deleted else _copy(obj.raw)

    def _found(self, request: kmock.Request) -> dict[str, Any]:
        obj = self._current(request.resource, request.namespace, request.name)
        if obj is None:  # 404 NotFound names the kind and object, as `kubectl get` shows it
            raise _error(404, 'NotFound', f'{request.resource.plural} "{request.name}" not found',
                         name=request.name, kind=self.resources[request.resource].kind)
        return obj

    def _store(self, resource: kmock.resource, obj: dict[str, Any], event: str) -> dict[str, Any]:
        # Every write gets the next value of one global counter as its resourceVersion (a string).
        self._rv += 1
        obj['metadata']['resourceVersion'] = str(self._rv)
        key = (resource, obj['metadata'].get('namespace'), obj['metadata']['name'])
        if key in self._objects:
            self._objects[key].history.append(_copy(obj))
        else:
            self._objects[key] = _copy(obj)
        if event == 'DELETED':  # the history keeps the final state, then kmock's deletion marker
            self._objects[key].delete()
            self._collect_garbage(obj['metadata'].get('uid'))
        # Watchers get ADDED/MODIFIED/DELETED with the object exactly as stored at that version.
        self._events.append((self._rv, resource, key[1], key[2], {'type': event, 'object': _copy(obj)}))
        return obj

    # ---- writes ----------------------------------------------------------------------------------

    @staticmethod
    def _manager(request: kmock.Request | None) -> str:
        # ?fieldManager=, else the client's user agent up to its first slash, as the apiserver names it
        if request is None:
            return 'emulator'
        return request.params.get('fieldManager') or (request.headers.get('User-Agent') or 'unknown').split('/')[0]

    def _validate(self, resource: kmock.resource, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        # a CRD's x-kubernetes-validations: 422 Invalid naming the field, with each rule's message
        rules = self.validations.get(resource)
        if rules is None:
            return
        violations = cel_rules.violations(rules, new, old)
        if violations:
            kind = self.resources[resource].kind
            name = new['metadata']['name']
            detail = '; '.join(f'{v.field}: {v.message}' for v in violations)
            raise _error(422, 'Invalid', f'{kind}.{resource.group} "{name}" is invalid: {detail}', name=name,
                         kind=kind, causes=[{'reason': v.reason, 'message': v.message, 'field': v.field}
                                            for v in violations])

    def _collect_garbage(self, uid: str) -> None:
        # objects whose ownerReferences point at a deleted object go too (and theirs, in turn)
        for (resource, _, _), stored in list(self._objects.items()):
            if stored.deleted:
                continue
            obj = stored.raw
            if not any(ref.get('uid') == uid for ref in obj['metadata'].get('ownerReferences') or []):
                continue
            current = _copy(obj)
            if current['metadata'].get('finalizers'):
                if not current['metadata'].get('deletionTimestamp'):
                    current['metadata'].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=0)
                    self._store(resource, current, 'MODIFIED')
            else:
                self._store(resource, current, 'DELETED')

    def _create(self, resource: kmock.resource, namespace: str | None, body: Any,
                request: kmock.Request | None = None, applied: bool = False) -> dict[str, Any]:
        info = self.resources[resource]
        if not isinstance(body, dict):
            raise _error(400, 'BadRequest', 'the request body must be a JSON object')
        obj = _copy(body)
        meta = obj.setdefault('metadata', {})
        if info.namespaced:
            if namespace is None:  # namespaced kinds are created only through their namespaced URL
                raise _error(405, 'MethodNotAllowed', NOT_ALLOWED)
            if meta.setdefault('namespace', namespace) != namespace:
                raise _error(400, 'BadRequest', 'the namespace of the provided object does not match '
                             'the namespace sent on the request')
            if NAMESPACES in self.resources and self._current(NAMESPACES, None, namespace) is None:
                raise _error(404, 'NotFound', f'namespaces "{namespace}" not found', name=namespace)
        else:
            meta.pop('namespace', None)
        # generateName: the server appends 5 random characters to the prefix and picks a free name.
        while not meta.get('name') and meta.get('generateName'):
            name = meta['generateName'] + ''.join(random.choices('bcdfghjklmnpqrstvwxz2456789', k=5))
            if self._current(resource, meta.get('namespace'), name) is None:
                meta['name'] = name
        if not meta.get('name'):
            raise _error(422, 'Invalid', 'metadata.name: Required value: name or generateName is required')
        if self._current(resource, meta.get('namespace'), meta['name']) is not None:
            raise _error(409, 'AlreadyExists', f'{resource.plural} "{meta["name"]}" already exists',
                         name=meta['name'], kind=info.kind)
        if 'status' in info.subresources:  # with a status subresource, create ignores .status
            obj.pop('status', None)
        if resource == NAMESPACES:  # the namespace registry starts every namespace Active
            obj['status'] = {'phase': 'Active'}
        if resource == CRDS:  # an established CRD serves its kind (no schema, no conversion)
            self._serve_crd(obj)
        obj['apiVersion'], obj['kind'] = _api_version(resource), info.kind
        meta.pop('deletionTimestamp', None)
        meta.pop('deletionGracePeriodSeconds', None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)  # set by the server on create
        self._validate(resource, obj, None)
        if not applied:  # an apply brings its own field ownership
            ssa.record_update(None, obj, self._manager(request))
        return self._store(resource, obj, 'ADDED')

    def _update(self, request: kmock.Request, old: dict[str, Any], new: Any, applied: bool = False) -> dict[str, Any]:
        if not isinstance(new, dict):
            raise _error(400, 'BadRequest', 'the request body must be a JSON object')
        info = self.resources[request.resource]
        sent_rv = (new.get('metadata') or {}).get('resourceVersion')
        if sent_rv and sent_rv != old['metadata']['resourceVersion']:  # optimistic concurrency: 409 when stale
            raise _error(409, 'Conflict', f'Operation cannot be fulfilled on {request.resource.plural} '
                         f'"{request.name}": the object has been modified; please apply your changes '
                         'to the latest version and try again', name=request.name, kind=info.kind)
        if request.subresource == 'status':  # writes to /status change nothing but .status
            obj = _copy(old)
            obj.pop('status', None)
            if 'status' in new:
                obj['status'] = new['status']
        else:
            obj = _copy(new)
            if 'status' in info.subresources:  # writes to the main resource ignore .status
                obj.pop('status', None)
                if 'status' in old:
                    obj['status'] = old['status']
        obj['apiVersion'], obj['kind'] = old['apiVersion'], old['kind']
        meta, old_meta = obj.setdefault('metadata', {}), old['metadata']
        for owned in ('name', 'namespace', 'uid', 'creationTimestamp', 'generation', 'resourceVersion',
                      'deletionTimestamp', 'deletionGracePeriodSeconds'):  # clients cannot change these
            meta.pop(owned, None)
            if owned in old_meta:
                meta[owned] = old_meta[owned]
        if not applied:  # fields whose value changed now belong to the writer
            ssa.record_update(old, obj, self._manager(request), request.subresource or '')
        added_finalizers = set(meta.get('finalizers', [])) - set(old_meta.get('finalizers', []))
        if old_meta.get('deletionTimestamp') and added_finalizers:
            raise _error(422, 'Invalid', 'metadata.finalizers: Forbidden: '
                         'no new finalizers can be added if the object is being deleted')
        if obj == old:  # a no-op write is not persisted: same resourceVersion, no watch event
            return old
        # generation counts changes to anything but metadata (.status is already pinned above for
        # kinds with a status subresource); writes to /status never bump it.
        if request.subresource != 'status' and {**obj, 'metadata': None} != {**old, 'metadata': None}:
            meta['generation'] = old_meta.get('generation', 1) + 1
        self._validate(request.resource, obj, old)
        if meta.get('deletionTimestamp') and not meta.get('finalizers'):  # the last finalizer is gone
            return self._store(request.resource, obj, 'DELETED')
        return self._store(request.resource, obj, 'MODIFIED')

    def _serve_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get('spec', {})
        for version in spec.get('versions', []):
            if version.get('served', True):
                sub = version.get('subresources') or {}
                resource = self.declare(spec['group'], version['name'], spec['names']['plural'], spec['names']['kind'],
                                        namespaced=spec.get('scope', 'Namespaced') == 'Namespaced',
                                        status_subresource='status' in sub, scale_subresource='scale' in sub)
                schema = (version.get('schema') or {}).get('openAPIV3Schema') or {}
                if rules := cel_rules.rules_of(schema):
                    self.validations[resource] = rules

    async def _serve_create(self, request: kmock.Request) -> kmock.Response:
        self._info(request)
        if request.subresource is not None:
            raise _error(405, 'MethodNotAllowed', NOT_ALLOWED)
        async with self._changed:
            obj = self._create(request.resource, request.namespace, request.data, request)
            self._changed.notify_all()
        return kmock.Response(status=201, payload=obj)  # 201 Created

    async def _serve_update(self, request: kmock.Request) -> dict[str, Any]:
        info = self._info(request)
        content_type = request.headers.get('Content-Type', '').split(';')[0].strip()
        if content_type == APPLY_PATCH:
            return await self._serve_apply(request)
        async with self._changed:
            old = self._found(request)
            if content_type == JSON_PATCH:
                if not isinstance(request.data, list):
                    raise _error(400, 'BadRequest', 'a JSON patch must be a list of operations')
                try:
                    new = jsonpatch.apply_patch(old, request.data)
                except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
                    # A failed `test` op (or a bad path) is 422 Invalid; kopf relies on it for finalizers.
                    raise _error(422, 'Invalid', f'the server rejected our request due to an error in our '
                                 f'request: {e}', name=request.name, kind=info.kind) from None
            elif content_type in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
                # Strategic merge is served as a JSON merge patch: lists are replaced, never merged by key.
                if not isinstance(request.data, dict):
                    raise _error(400, 'BadRequest', 'a merge patch must be a JSON object')
                new = _merge(old, request.data)
            else:
                raise _error(415, 'UnsupportedMediaType', f'the body of the request was in an unknown format: '
                             f'{content_type}')
            obj = self._update(request, old, new)
            self._changed.notify_all()
        return obj

    async def _serve_apply(self, request: kmock.Request) -> Any:
        # Server-side apply: PATCH with the object's applied configuration; creates it when missing.
        info = self.resources[request.resource]
        if not isinstance(request.data, dict):
            raise _error(400, 'BadRequest', 'an applied configuration must be an object')
        if not request.params.get('fieldManager'):
            raise _error(422, 'Invalid', 'PATCH request must have a field manager (?fieldManager=) for apply')
        manager, force = request.params['fieldManager'], request.params.get('force') == 'true'
        async with self._changed:
            old = self._current(request.resource, request.namespace, request.name)
            try:
                new = ssa.apply(old, request.data, manager, force)
            except ssa.Conflict as exc:
                raise _error(409, 'Conflict', str(exc), name=request.name, kind=info.kind) from None
            if old is None:  # (the apiserver answers 201 here; kmock keeps a status set on a view, so 200)
                obj = self._create(request.resource, request.namespace, new, request, applied=True)
            else:
                obj = self._update(request, old, new, applied=True)
            self._changed.notify_all()
        return obj

    async def _serve_replace(self, request: kmock.Request) -> dict[str, Any]:
        self._info(request)
        if request.name is None:
            raise _error(405, 'MethodNotAllowed', NOT_ALLOWED)
        async with self._changed:
            obj = self._update(request, self._found(request), request.data)  # PUT replaces the whole object
            self._changed.notify_all()
        return obj

    async def _serve_delete(self, request: kmock.Request) -> dict[str, Any]:
        info = self._info(request)
        async with self._changed:
            obj = self._found(request)
            meta = obj['metadata']
            options = request.data if isinstance(request.data, dict) else {}
            for field, value in (options.get('preconditions') or {}).items():  # DeleteOptions.preconditions
                if value and value != meta.get(field):
                    raise _error(409, 'Conflict', f'Precondition failed: {field} mismatch',
                                 name=request.name, kind=info.kind)
            if meta.get('finalizers'):  # finalizers hold the object: it only gets a deletionTimestamp
                if not meta.get('deletionTimestamp'):
                    meta.update(deletionTimestamp=_now(), deletionGracePeriodSeconds=0)
                    obj = self._store(request.resource, obj, 'MODIFIED')
                    self._changed.notify_all()
                return obj
            self._store(request.resource, obj, 'DELETED')
            self._changed.notify_all()
        # An immediate deletion answers with a Success Status naming the object.
        return {'apiVersion': 'v1', 'kind': 'Status', 'metadata': {}, 'status': 'Success',
                'details': {'name': request.name, 'group': request.resource.group,
                            'kind': request.resource.plural, 'uid': meta['uid']}}

    # ---- reads -----------------------------------------------------------------------------------

    async def _serve_version(self, request: kmock.Request) -> dict[str, Any]:
        result = await super()._serve_version(request)
        result['groupVersion'] = result['groupVersion'].lstrip('/')  # the core group is `v1`, not `/v1`
        return result

    def _matches(self, request: kmock.Request, resource: kmock.resource, namespace: str | None, name: str) -> bool:
        # A list/watch without a namespace in the URL spans all namespaces.
        return (resource == request.resource and request.namespace in (None, namespace)
                and request.name in (None, name))

    @staticmethod
    def _selected(request: kmock.Request, obj: dict[str, Any]) -> bool:
        # ?labelSelector=k=v,k2!=v2: equality-based label selectors, as list/watch filter them.
        labels = (obj.get('metadata') or {}).get('labels') or {}
        for term in filter(None, (request.params.get('labelSelector') or '').split(',')):
            key, op, value = re.match(r'^([^!=]+)(!=|==|=)(.*)$', term).groups()
            if (labels.get(key) == value) == (op == '!='):
                return False
        return True

    def _snapshot(self, request: kmock.Request) -> list[dict[str, Any]]:
        return [_copy(obj.raw) for (res, ns, name), obj in sorted(
                    self._objects.items(), key=lambda item: (item[0][1] or '', item[0][2]))
                if not obj.deleted and self._matches(request, res, ns, name) and self._selected(request, obj.raw)]

    async def _serve_fetch(self, request: kmock.Request) -> Any:
        self._info(request)  # GET of NAME/status returns the whole object, as the apiserver does
        async with self._changed:
            found = self._found(request)
        if request.subresource == 'log':  # pods/NAME/log?tailLines=N: plain text from the kubelet
            lines = self.pod_logs.get((request.namespace, request.name), '').splitlines(keepends=True)
            tail = int(request.params.get('tailLines') or 0)
            return ''.join(lines[-tail:] if tail else lines).encode()
        return found

    async def _serve_list(self, request: kmock.Request) -> dict[str, Any]:
        info = self._info(request)
        async with self._changed:
            items, rv = self._snapshot(request), str(self._rv)
        # Lists are `kind: <Kind>List` with the collection's resourceVersion to watch from.
        return {'apiVersion': _api_version(request.resource), 'kind': f'{info.kind}List',
                'metadata': {'resourceVersion': rv}, 'items': items}

    async def _serve_watch(self, request: kmock.Request) -> Any:
        self._info(request)
        try:
            since = int(request.params.get('resourceVersion') or 0)
            timeout = float(request.params.get('timeoutSeconds') or 0) or None
        except ValueError:
            raise _error(400, 'BadRequest', 'invalid resourceVersion or timeoutSeconds') from None
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        yield b''  # send the headers now: the stream is open even if nothing happens
        async with self._changed:
            if not since:  # no resourceVersion: synthetic ADDED events for the current state first
                initial = [{'type': 'ADDED', 'object': obj} for obj in self._snapshot(request)]
                position = len(self._events)
            else:  # from a resourceVersion: exactly the events after it, nothing replayed twice
                initial = []
                position = bisect.bisect_right(self._events, since, key=lambda e: e[0])
        for event in initial:
            yield event
        while True:
            async with self._changed:
                try:
                    async with asyncio.timeout_at(deadline):  # ?timeoutSeconds=N: the server ends it after N s
                        await self._changed.wait_for(lambda seen=position: self._closing or len(self._events) > seen)
                except TimeoutError:
                    return
                if self._closing:
                    return
                chunk, position = self._events[position:], len(self._events)
            for _, res, ns, name, event in chunk:
                if self._matches(request, res, ns, name) and self._selected(request, event['object']):
                    yield event
