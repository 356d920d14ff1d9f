"""Arena: the blind side-by-side page where people vote, in front of two or more served models."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from tanuki_operator.api.common import (
    QUANTITY,
    Input,
    K8sModel,
    ObjectRef,
    Output,
    RatedEndpoint,
    Scheduling,
    SecretKeyRef,
    StageSpec,
    Storage,
    dump_recipe,
    endpoints_inputs,
    endpoints_secrets,
    rated_endpoints_recipe,
    reads,
    reads_of,
)
from tanuki_pipelines.arena.config import ArenaSettings

DATABASE_URL_ENV = "TANUKI_ARENA_DATABASE_URL"
"""The arena program reads the database URL from the file ``<this>_FILE`` names."""
VOTER_TOKENS_ENV = "ARENA_VOTER_TOKENS"
"""The arena program reads the voters' tokens from the file ``<this>_FILE`` names."""


class ArenaContestant(RatedEndpoint):
    """A model people vote on: a ModelServer, or any OpenAI-compatible URL with its model name."""


class SqliteVotes(K8sModel):
    """The embedded database: one SQLite file in WAL mode on a ReadWriteOnce volume."""

    size: str = Field(default="1Gi", pattern=QUANTITY)
    """Size of the PersistentVolumeClaim ``<name>-votes`` (about 2 KB per vote with its answers)."""
    storageClassName: str | None = None
    """StorageClass of the claim (empty: the cluster's default). Not a network filesystem: SQLite's
    write-ahead log needs shared memory between its readers and the writer."""


class VoteDatabase(K8sModel):
    """Where votes are stored. The claim ``<name>-votes`` is not owned by the Arena: deleting the
    Arena keeps the votes; delete the claim to drop them."""

    urlSecret: SecretKeyRef | None = None
    """A Secret key holding a PostgreSQL URL (``postgresql+psycopg://user:password@host/db``); the
    arena may then run several replicas. Empty: SQLite on the claim ``<name>-votes``, one replica,
    replaced (``Recreate``) rather than rolled."""
    sqlite: SqliteVotes = Field(default_factory=SqliteVotes)
    """The SQLite claim (without urlSecret)."""


class VoterIdentity(K8sModel):
    """Who is voting: every request but the health and metrics endpoints must name a voter."""

    mode: Literal["header", "tokens", "open"] = "header"
    """``header``: an authenticating proxy in front (oauth2-proxy, an ingress with auth) sets
    ``header``; ``tokens``: each voter holds a token from ``tokens`` (a ``Bearer`` header, or the
    link ``/?token=…`` once); ``open``: anyone, identified by a cookie (a demo on one machine)."""
    header: str = Field(default="X-Forwarded-User", pattern=r"^[A-Za-z0-9-]+$")
    """``header``: the request header holding the user (oauth2-proxy: ``X-Forwarded-User``)."""
    tokens: SecretKeyRef | None = None
    """``tokens``: a Secret key of your own holding ``voter:token`` lines (tokens of 16 characters
    or more)."""
    voters: list[str] = Field(default_factory=list)
    """``tokens``, instead of ``tokens``: the operator issues each voter a token into the Secret
    ``<name>-voter-tokens`` (key ``tokens``, ``voter:token`` lines; a voter added later gets one, a
    voter removed loses theirs, the others keep theirs). A voter's link is ``<url>/?token=<token>``."""

    @model_validator(mode="after")
    def _tokens_for_token_mode(self) -> VoterIdentity:
        if self.mode == "tokens" and (self.tokens is None) == (not self.voters):
            raise ValueError("tokens: mode tokens needs either the Secret key of voter:token lines or voters")
        bad = [voter for voter in self.voters if not voter or ":" in voter or voter != voter.strip()]
        if bad or len(set(self.voters)) != len(self.voters):
            raise ValueError(f"voters: names must be distinct, non-empty, without ':' or surrounding spaces: {bad}")
        return self

    @property
    def issued(self) -> bool:
        """The operator issues the voters' tokens."""
        return self.mode == "tokens" and self.tokens is None


class EvalResults(K8sModel):
    """An EvalJob's results shown beside the votes' ratings."""

    from_: ObjectRef = Field(alias="from", json_schema_extra=reads(Output.LEADERBOARD))
    """The EvalJob (its judged-arena leaderboard and MT-Bench grades); the Arena waits until it succeeded."""

    @model_validator(mode="after")
    def _eval_job(self) -> EvalResults:
        if self.from_.kind != "EvalJob":
            raise ValueError("from.kind must be EvalJob")
        return self


class WebResources(K8sModel):
    """CPU and memory of each arena pod (it waits on the models: little of either)."""

    cpu: str = Field(default="1", pattern=QUANTITY)
    """CPU request and limit."""
    memory: str = Field(default="1Gi", pattern=QUANTITY)
    """Memory request and limit."""


class ArenaSpec(StageSpec):
    """A blind side-by-side arena: a person asks, two anonymous models answer, the person votes;
    ratings live."""

    contestants: list[ArenaContestant] = Field(min_length=2)
    """The models drawn two at a time (each pair gathers battles at the same pace)."""
    database: VoteDatabase = Field(default_factory=VoteDatabase)
    """SQLite on a claim of its own (default) or PostgreSQL from a Secret."""
    identity: VoterIdentity = Field(default_factory=VoterIdentity)
    """How voters are identified."""
    replicas: int = Field(default=1, ge=1)
    """Arena pods (more than one only with database.urlSecret)."""
    port: int = Field(default=8080, ge=1024, le=65535)
    """The pods' HTTP port (the Service ``<name>`` listens on 80)."""
    results: EvalResults | None = None
    """An EvalJob whose judged-arena leaderboard and MT-Bench grades the leaderboard page shows
    beside the votes' ratings (needs storage)."""
    storage: Storage | None = None
    """The PVC holding the EvalJob's results and ``recipe.questions`` (mounted read-only)."""
    image: str | None = None
    """Container image; default: the operator's trainer image (it has the eval extra)."""
    resources: WebResources = Field(default_factory=WebResources)
    """Per pod."""
    scheduling: Scheduling = Field(default_factory=Scheduling)
    """Node selection, tolerations and priority."""
    recipe: ArenaSettings = Field(default_factory=ArenaSettings)
    """Questions, language, answer length, limits per voter, ratings (``tanuki arena serve``'s recipe
    without its contestants, database and identity, which come from the fields above)."""

    MUTABLE_FIELDS: ClassVar[frozenset[str]] = frozenset({
        "contestants", "database", "identity", "replicas", "port", "results", "storage", "image", "resources",
        "scheduling", "recipe"})
    """A web app: every change rolls out to its pods."""

    @model_validator(mode="after")
    def _consistent(self) -> ArenaSpec:
        if self.replicas > 1 and self.database.urlSecret is None:
            raise ValueError("replicas: more than one arena pod needs database.urlSecret (SQLite has one writer)")
        if (self.results is not None or self.recipe.questions is not None) and self.storage is None:
            raise ValueError("storage: results and recipe.questions are read from a PVC: name it")
        return self

    def inputs(self) -> dict[str, Input]:
        found = endpoints_inputs(self.contestants, "contestant", "spec.contestants")
        if self.results is not None:
            found["results"] = Input(self.results.from_, "spec.results", output=reads_of(EvalResults, "from_"))
        return found

    def contestant_names(self) -> list[str]:
        """Each contestant's leaderboard name."""
        return [contestant.leaderboard_name() for contestant in self.contestants]

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        recipe = dump_recipe(self.recipe)
        recipe["contestants"] = rated_endpoints_recipe(self.contestants, "contestant", resolved)
        recipe["database_url"] = "sqlite:///arena.db"  # under the votes claim; a urlSecret overrides it
        # a page's answer streams may reach another pod than its battle's: only one pod asks ahead
        recipe["answers_at_start"] = self.replicas == 1
        identity: dict[str, Any] = {"mode": self.identity.mode, "header": self.identity.header}
        if self.identity.mode == "tokens":
            identity["tokens_env"] = VOTER_TOKENS_ENV
        recipe["identity"] = identity
        if "results" in resolved:
            recipe["results"] = resolved["results"].rsplit("/", 1)[0]  # the EvalJob's output directory
        return recipe

    def secrets(self) -> dict[str, SecretKeyRef]:
        found = endpoints_secrets(self.contestants, "contestant")
        if self.database.urlSecret is not None:
            found[DATABASE_URL_ENV] = self.database.urlSecret
        if self.identity.tokens is not None and self.identity.mode == "tokens":
            found[VOTER_TOKENS_ENV] = self.identity.tokens
        return found
