"""Request and response bodies: the REST contract, validated strictly at the edge.

Every request model forbids unknown fields and refuses type coercion ("123" is not an integer), so a
client bug shows up as a precise 422 instead of as silently different behaviour.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

ClientId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=120, strip_whitespace=True)]
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
PreChat = Annotated[dict[str, Annotated[str, StringConstraints(max_length=2000)]], Field(max_length=50)]
PermissionName = Literal["chat_user", "chat_rep", "access_conversation_entries", "supervisor", "admin"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def no_nul_characters(cls, data: Any) -> Any:
        """Refuse NUL anywhere in a request: PostgreSQL cannot store it in text, so it would fail late."""
        if _has_nul(data):
            raise ValueError("text must not contain NUL (\\u0000) characters")
        return data


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class LoginRequest(Strict):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Password


class Me(BaseModel):
    id: str
    username: str
    display_name: str
    permissions: list[str]


class LoginResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    user: Me


class CustomerSessionRequest(Strict):
    display_name: Name | None = None
    email: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    pre_chat: PreChat | None = None
    identity_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None


class CustomerSessionResponse(BaseModel):
    access_token: str
    customer_id: str
    verified: bool
    expires_in: int
    session_expires_in: int
    last_event_id: str
    # The pre-chat form to show: the deployment's fields, less those a verified identity already answers.
    pre_chat_fields: list[dict[str, Any]] = []


class ResumeRequest(Strict):
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class ResumeSessionResponse(CustomerSessionResponse):
    conversation_id: str  # the conversation the link leads to


class StreamTicketResponse(BaseModel):
    ticket: str
    expires_in: int


class CreateConversationRequest(Strict):
    id: ClientId | None = Field(
        default=None,
        description="a retry key chosen by the client, scoped to the customer; the conversation's id is the server's",
    )
    pre_chat: PreChat | None = None


class Participant(BaseModel):
    id: str
    kind: str
    joined_at: str
    left_at: str | None


class ConversationOut(BaseModel):
    id: str
    status: Literal["queued", "assigned", "closed"]
    customer_id: str
    deployment_id: str
    queue_id: str
    assignee_id: str | None
    pre_chat: dict[str, Any]
    participants: list[Participant]
    created_at: str
    updated_at: str
    closed_at: str | None
    waiting_since: str | None = None  # the customer's last unanswered message (or arrival)
    customer: dict[str, Any] | None = None  # {id, display_name, email, verified}
    assignee: dict[str, Any] | None = None  # {id, display_name}
    earlier_conversations: list[dict[str, Any]] | None = None  # a verified customer's history (staff)
    bot_id: str | None = None
    escalated_at: str | None = None


class ConversationPage(BaseModel):
    conversations: list[ConversationOut]
    next_cursor: str | None


class Entry(BaseModel):
    """One stored event, exactly as the stream carries it in its ``data:`` line."""

    model_config = ConfigDict(extra="allow")
    id: int
    type: str
    conversation_id: str | None
    at: str


class EntryPage(BaseModel):
    entries: list[Entry]
    next_cursor: int | None


AttachmentId = Annotated[str, StringConstraints(pattern=r"^att_[0-9a-f]{32}$")]


class MessageRequest(Strict):
    id: ClientId
    text: Annotated[str, StringConstraints(max_length=10_000)]
    attachment_ids: Annotated[list[AttachmentId], Field(max_length=10)] | None = None

    @model_validator(mode="after")
    def says_something(self) -> MessageRequest:
        if not self.text and not self.attachment_ids:
            raise ValueError("a message needs text or attachments")
        return self


class AttachmentOut(BaseModel):
    id: str
    name: str
    content_type: str
    size: int


class RatingRequest(Strict):
    score: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str, StringConstraints(max_length=2000)] | None = None


Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class TranscriptRequest(Strict):
    email: Email


class ContactRequest(Strict):
    email: Email


class ContactOut(BaseModel):
    customer_id: str
    email: str


class Accepted(BaseModel):
    status: Literal["queued"]


class TypingRequest(Strict):
    state: Literal["started", "stopped"]


class ReceiptRequest(Strict):
    type: Literal["delivered", "read"]
    entry_id: Annotated[int, Field(ge=1, le=2**63 - 1)]


class TransferRequest(Strict):
    to_user_id: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    to_queue_id: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None


class AssignRequest(Strict):
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=40)]


class PresenceRequest(Strict):
    status: Literal["online", "busy", "away", "offline"]


class PresenceOut(BaseModel):
    user_id: str
    status: str


class UserCreate(Strict):
    username: Username
    password: Annotated[str, StringConstraints(min_length=8, max_length=1024)]
    display_name: Name | None = None
    permissions: Annotated[list[PermissionName], Field(max_length=5)]
    max_concurrent: Annotated[int, Field(ge=0, le=100)] = 3
    queue_ids: Annotated[list[Annotated[str, StringConstraints(max_length=40)]], Field(max_length=100)] = []


class UserUpdate(Strict):
    display_name: Name | None = None
    password: Annotated[str, StringConstraints(min_length=8, max_length=1024)] | None = None
    permissions: Annotated[list[PermissionName], Field(max_length=5)] | None = None
    max_concurrent: Annotated[int, Field(ge=0, le=100)] | None = None
    disabled: bool | None = None
    queue_ids: Annotated[list[Annotated[str, StringConstraints(max_length=40)]], Field(max_length=100)] | None = None


class UserOut(BaseModel):
    id: str
    username: str
    display_name: str
    permissions: list[str]
    max_concurrent: int
    presence: str
    disabled: bool
    created_at: str
    queue_ids: list[str] = []


class QueueCreate(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


Disposition = Annotated[str, StringConstraints(min_length=1, max_length=60, strip_whitespace=True)]


class QueueUpdate(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    dispositions: Annotated[list[Disposition], Field(max_length=50)] | None = None


class QueueOut(BaseModel):
    id: str
    name: str
    created_at: str
    dispositions: list[str] = []
    bot_user_id: str | None = None  # a service agent in front of the queue (issue 14)


class QueueListItem(BaseModel):
    """A queue as pickers show it: by name, with how many conversations wait in it."""

    id: str
    name: str
    waiting: int
    dispositions: list[str]


class CloseRequest(Strict):
    disposition: Disposition | None = None


class NoteRequest(Strict):
    id: ClientId
    text: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]


class OfferCustomer(BaseModel):
    id: str
    display_name: str
    email: str | None
    verified: bool


class OfferOut(BaseModel):
    """A pending offer, as ``offer.created`` carried it."""

    offer_id: str
    rep_id: str
    offer_conversation_id: str
    created_at: str
    expires_at: str
    conversation: ConversationOut
    customer: OfferCustomer
    preview: str | None


Shortcut = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
CannedTitle = Annotated[str, StringConstraints(min_length=1, max_length=120, strip_whitespace=True)]
CannedText = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
QueueRef = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class CannedCreate(Strict):
    shortcut: Shortcut
    title: CannedTitle
    text: CannedText
    queue_id: QueueRef | None = None
    personal: bool | None = None  # default: shared for supervisors and admins, personal for reps


class CannedUpdate(Strict):
    shortcut: Shortcut | None = None
    title: CannedTitle | None = None
    text: CannedText | None = None
    queue_id: QueueRef | None = None


class CannedOut(BaseModel):
    id: str
    shortcut: str
    title: str
    text: str
    queue_id: str | None
    owner_id: str | None
    created_at: str
    updated_at: str
    bot_user_id: str | None = None


Origin = Annotated[str, StringConstraints(pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$", max_length=255)]


class PreChatOption(Strict):
    value: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    label: Name
    queue: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None  # routes here


class PreChatField(Strict):
    """One question of the pre-chat form (helpline/domain/prechat.py): text, email, or a choice."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,40}$")]
    label: Name
    type: Literal["text", "email", "select"] = "text"
    required: bool = False
    options: Annotated[list[PreChatOption], Field(max_length=50)] = []

    @model_validator(mode="after")
    def options_only_for_select(self) -> PreChatField:
        if self.type == "select" and not self.options:
            raise ValueError("a select field needs options")
        if self.type != "select" and self.options:
            raise ValueError("only a select field has options")
        if len({option.value for option in self.options}) != len(self.options):
            raise ValueError("option values must be unique")
        return self


Clock = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class BusinessHours(Strict):
    """Opening hours in the deployment's time zone; outside them, an automatic reply, then queue or refuse."""

    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    weekly: dict[Day, Annotated[list[Annotated[list[Clock], Field(min_length=2, max_length=2)]], Field(max_length=6)]]
    outside: Literal["queue", "refuse"] = "queue"
    auto_reply: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = None

    @model_validator(mode="after")
    def evaluable(self) -> BusinessHours:
        from helpline.domain import hours

        hours.validate(self.model_dump())
        return self


class OfferAnswer(BaseModel):
    offer_id: str
    status: str


class AvailableRep(BaseModel):
    id: str
    display_name: str
    load: int
    active: int
    capacity: int


class RepStats(BaseModel):
    id: str
    display_name: str
    presence: str
    active: int
    pending_offers: int
    capacity: int
    routable: bool = True  # holds access_conversation_entries (offered work at all)
    presence_since: str | None = None
    conversations: list[dict[str, str]] = []  # [{id, customer}]


class QueueStats(BaseModel):
    queue_id: str
    name: str
    length: int
    waiting: int = 0
    longest_wait_seconds: int
    reps_online: int
    assigned: int = 0
    avg_wait_seconds: int | None = None  # over the last hour
    avg_handle_seconds: int | None = None  # over the last hour
    service_level: float | None = None  # share answered within the target, last hour
    service_level_target_seconds: float = 60.0
    rating_average: float | None = None
    ratings: int = 0
    bot_user_id: str | None = None
    bot_contained_today: int = 0
    bot_escalated_today: int = 0
    reps: list[RepStats]


AttachmentType = Literal[
    "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"
]  # what domain/filetypes.py recognises by content, HTML and SVG never among them
AttachmentTypes = Annotated[list[AttachmentType], Field(max_length=6)]
AttachmentMaxBytes = Annotated[int, Field(ge=1, le=2**40)]


class DeploymentCreate(Strict):
    key: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    queue: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    allowed_origins: Annotated[list[Origin], Field(max_length=50)]
    pre_chat_fields: Annotated[list[PreChatField], Field(max_length=20)] = []
    identity_key: Annotated[str, StringConstraints(min_length=32, max_length=255)] | None = None
    business_hours: BusinessHours | None = None
    greeting: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = None
    # None: the server's (HELPLINE_ATTACHMENT_MAX_BYTES, HELPLINE_ATTACHMENT_TYPES); a larger limit is capped.
    attachment_max_bytes: AttachmentMaxBytes | None = None
    attachment_types: AttachmentTypes | None = None


class DeploymentUpdate(Strict):
    allowed_origins: Annotated[list[Origin], Field(max_length=50)] | None = None
    pre_chat_fields: Annotated[list[PreChatField], Field(max_length=20)] | None = None
    business_hours: BusinessHours | None = None
    greeting: Annotated[str, StringConstraints(max_length=1000)] | None = None
    attachment_max_bytes: AttachmentMaxBytes | None = None
    attachment_types: AttachmentTypes | None = None
    retention_days: Annotated[
        int | None,
        Field(ge=1, le=36500, description="remove conversations idle this many days; null keeps them for ever"),
    ] = None


class DeploymentOut(BaseModel):
    id: str
    key: str
    queue_id: str
    allowed_origins: list[str]
    pre_chat_fields: list[dict[str, Any]]
    business_hours: dict[str, Any] | None
    verified_identities: bool
    created_at: str
    greeting: str | None = None
    attachment_max_bytes: int | None = None
    attachment_types: list[str] | None = None
    retention_days: int | None = None
