"""The subset of QBO's query language that the sandbox serves: a pure parser and a pure evaluator.

Grammar, operators and limits follow FACTS.md sections 4.4 and 5:
``SELECT * | COUNT(*) FROM Entity [WHERE cond AND ...] [ORDERBY field [ASC|DESC], ...] [STARTPOSITION n]
[MAXRESULTS n]``. Everything QBO documents as unsupported (projections, OR, JOIN, GROUP BY, functions other
than COUNT, operators other than IN = < > <= >= LIKE, Id filtered by anything but = and IN) raises
``QueryError``, and so does any other malformed input: the query endpoint maps that one exception to a fault.

Fault texts are QBO's own where public captures exist: code 4000 "Error parsing query" with a
``QueryParserError: ...`` detail (issues mcohen01/node-quickbooks#56, consolibyte/quickbooks-php#129,
intuit/QuickBooks-V3-PHP-SDK#8) and code 4001 "Invalid query" with a ``QueryValidationError: ...`` detail
(ruckus/quickbooks-ruby#24 and #403). Details for cases no capture shows are the sandbox's own wording.
"""

from __future__ import annotations

import heapq
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from itertools import islice
from types import MappingProxyType
from typing import Any, NoReturn

DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000

PARSE_CODE, PARSE_MESSAGE = "4000", "Error parsing query"
INVALID_CODE, INVALID_MESSAGE = "4001", "Invalid query"

# Field kinds decide how a literal and a stored value are normalised before they are compared.
STRING, ID, NUMBER, INSTANT, BOOL = "string", "id", "number", "instant", "bool"

_ENTITIES = (
    "Customer", "Invoice", "Payment", "Estimate", "SalesReceipt", "CreditMemo", "RefundReceipt", "Item",
    "Term", "PaymentMethod", "Vendor", "Employee", "Preferences", "CompanyInfo", "ExchangeRate", "Account",
    "TaxCode", "Class", "Department", "TimeActivity",
)
_ENTITY_BY_KEY = MappingProxyType({name.lower(): name for name in _ENTITIES})

# Name lists: QBO returns only active ones unless the query filters on Active (FACTS.md section 5).
_HAS_ACTIVE = frozenset({
    "Customer", "Vendor", "Employee", "Item", "Term", "PaymentMethod", "Account", "TaxCode", "Class",
    "Department",
})

_META = ("Id", "MetaData.CreateTime", "MetaData.LastUpdatedTime")
_NAMED_LIST = (*_META, "Name", "Active", "FullyQualifiedName")
_SALES_TXN = (*_META, "CustomerRef", "DocNumber", "TxnDate", "TotalAmt", "Balance", "CurrencyRef")

# Customer and Invoice are Intuit's documented filterable lists (FACTS.md section 5; TotalAmt from Intuit's
# own examples). The rest are the fields this project's clients filter on, kept to what the Intuit reference
# marks filterable where known (ruckus/quickbooks-ruby#403: Vendor's PrimaryEmailAddr and Balance are not).
_FILTERABLE = MappingProxyType({
    "Customer": frozenset({
        *_META, "DisplayName", "GivenName", "MiddleName", "FamilyName", "FullyQualifiedName", "CompanyName",
        "PrimaryEmailAddr", "PrintOnCheckName", "Active", "Balance",
    }),
    "Invoice": frozenset({
        *_META, "CustomerRef", "DocNumber", "TxnDate", "DueDate", "Balance", "SalesTermRef", "ProjectRef",
        "TotalAmt",
    }),
    "Payment": frozenset({*_META, "CustomerRef", "TxnDate", "TotalAmt", "CurrencyRef", "PaymentRefNum"}),
    "Estimate": frozenset({*_SALES_TXN, "TxnStatus", "ExpirationDate"}),
    "SalesReceipt": frozenset(_SALES_TXN),
    "CreditMemo": frozenset(_SALES_TXN),
    "RefundReceipt": frozenset(_SALES_TXN),
    "Item": frozenset({*_NAMED_LIST, "Type", "Sku"}),
    "Term": frozenset(_NAMED_LIST),
    "PaymentMethod": frozenset({*_NAMED_LIST, "Type"}),
    "Vendor": frozenset({
        *_META, "DisplayName", "GivenName", "MiddleName", "FamilyName", "CompanyName", "PrintOnCheckName",
        "Active",
    }),
    "Employee": frozenset({
        *_META, "DisplayName", "GivenName", "MiddleName", "FamilyName", "PrintOnCheckName", "Active",
        "EmployeeNumber",
    }),
    "Preferences": frozenset(_META),
    "CompanyInfo": frozenset(_META),
    "ExchangeRate": frozenset({
        "SourceCurrencyCode", "TargetCurrencyCode", "AsOfDate", "MetaData.LastUpdatedTime",
    }),
    "Account": frozenset({
        *_NAMED_LIST, "AccountType", "AccountSubType", "Classification", "CurrentBalance", "CurrencyRef",
    }),
    "TaxCode": frozenset(_NAMED_LIST),
    "Class": frozenset(_NAMED_LIST),
    "Department": frozenset(_NAMED_LIST),
    # Intuit's TimeActivity reference marks only these filterable; EmployeeRef, VendorRef, CustomerRef, ItemRef and
    # NameOf are not, and a property QBO does not filter on is refused with 4001 (docs/qbo/time-activity.md).
    "TimeActivity": frozenset({*_META, "TxnDate", "ProjectRef", "BillableStatus"}),
})
# Customer sorts on its filterable fields minus PrimaryEmailAddr, plus BalanceWithJobs (FACTS.md section 5).
_NOT_SORTABLE = frozenset({"PrimaryEmailAddr"})
_EXTRA_SORTABLE = MappingProxyType({"Customer": frozenset({"BalanceWithJobs"})})
# Entities whose sortable fields Intuit lists apart from their filterable ones (TimeActivity reference).
_ONLY_SORTABLE = MappingProxyType({"TimeActivity": frozenset({*_META, "TxnDate"})})

_KINDS = MappingProxyType({
    "Id": ID,
    "Active": BOOL,
    "Balance": NUMBER, "TotalAmt": NUMBER, "CurrentBalance": NUMBER, "BalanceWithJobs": NUMBER,
    "MetaData.CreateTime": INSTANT, "MetaData.LastUpdatedTime": INSTANT,
    "TxnDate": INSTANT, "DueDate": INSTANT, "ExpirationDate": INSTANT, "AsOfDate": INSTANT,
})
# A filter on an object-valued field compares one of its members (FACTS.md section 9: references are
# {"value", "name"}; the PrimaryEmailAddr filter matches the address).
_MEMBER = MappingProxyType({"PrimaryEmailAddr": "Address"})

_UNSUPPORTED_WORDS = MappingProxyType({
    "OR": "OR is not supported; combine conditions with AND or run separate queries",
    "JOIN": "JOIN is not supported; query one entity at a time",
    "INNER": "JOIN is not supported; query one entity at a time",
    "LEFT": "JOIN is not supported; query one entity at a time",
    "GROUP": "GROUP BY is not supported",
    "HAVING": "HAVING is not supported",
    "NOT": "NOT is not supported; the operators are IN, =, <, >, <=, >= and LIKE",
    "LIMIT": "LIMIT is not supported; use MAXRESULTS",
    "OFFSET": "OFFSET is not supported; use STARTPOSITION",
    "DISTINCT": "DISTINCT is not supported",
    "UNION": "UNION is not supported",
})
_COMPARISONS = MappingProxyType({
    "=": operator.eq, "<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge,
})

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<symbol><=|>=|<>|!=|[=<>*(),])
    )""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_BLANK_TO_END = re.compile(r"\s*\Z")


class QueryError(Exception):
    """A query QBO would refuse; ``code``, ``message`` and ``detail`` are the fault's Error fields."""

    def __init__(self, detail: str, *, code: str = PARSE_CODE, message: str = PARSE_MESSAGE) -> None:
        super().__init__(f"{message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail

    def as_error(self) -> dict[str, str]:
        """Return the fault's Error entry as QBO's JSON faults spell it (FACTS.md section 2.5)."""
        return {"Message": self.message, "Detail": self.detail, "code": self.code}


def _invalid(detail: str) -> QueryError:
    return QueryError(f"QueryValidationError: {detail}", code=INVALID_CODE, message=INVALID_MESSAGE)


class _CurrentDate:
    """The CURRENT_DATE literal (an Intuit example in FACTS.md section 5), resolved when the query runs."""

    def __repr__(self) -> str:
        return "CURRENT_DATE"


CURRENT_DATE = _CurrentDate()


@dataclass(frozen=True)
class Condition:
    """One WHERE condition; ``values`` are normalised for ``kind`` (times stay validated text) - several for IN."""

    field: str
    path: tuple[str, ...]
    kind: str
    op: str  # "=", "<", ">", "<=", ">=", "in", "like", or "null" (QBO spells null as ' ')
    values: tuple[Any, ...]


@dataclass(frozen=True)
class OrderKey:
    """One ORDERBY item."""

    field: str
    path: tuple[str, ...]
    kind: str
    descending: bool


@dataclass(frozen=True)
class Query:
    """A parsed SELECT; ``entity`` carries QBO's spelling whatever case the text used."""

    entity: str
    is_count: bool
    conditions: tuple[Condition, ...]
    order_by: tuple[OrderKey, ...]
    start_position: int
    max_results: int


@dataclass(frozen=True)
class QueryResult:
    """One page of a query: ``rows`` for SELECT * (``count`` None); ``count`` for COUNT(*) (no rows)."""

    entity: str
    rows: list[dict[str, Any]]
    count: int | None
    start_position: int
    max_results: int
    total_count: int | None  # every match, counted; None when a page was read without counting the rest

    def as_query_response(self) -> dict[str, Any]:
        """Return the body's "QueryResponse" object shaped as QBO does for this result."""
        if self.count is not None:
            return {"totalCount": self.count}  # FACTS.md section 5: COUNT(*) answers totalCount only
        if not self.rows:
            return {}  # QBO omits empty properties (FACTS.md section 2.3); an empty page is {}
        # maxResults is "the number of entity elements in the QueryResponse" (Intuit docs, quoted in
        # mcohen01/node-quickbooks#89), not the MAXRESULTS asked for.
        return {self.entity: self.rows, "startPosition": self.start_position, "maxResults": len(self.rows)}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int

    @property
    def word(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


def _line_column(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while not _BLANK_TO_END.match(text, pos):
        match = _TOKEN.match(text, pos)
        if match is None:
            # QBO's parser lexes on demand, so a grammar error earlier in the text is reported first.
            tokens.append(_Token("error", "", pos))
            break
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


def _lexical_error(text: str, pos: int) -> QueryError:
    while pos < len(text) - 1 and text[pos].isspace():
        pos += 1
    line, column = _line_column(text, pos)
    char = text[pos]
    return QueryError(
        f"QueryParserError: Invalid content. Lexical error at line {line}, column {column}.  "
        f'Encountered: "{char}" ({ord(char)}), after : ""'
    )


def parse_query(text: str) -> Query:
    """Parse one SELECT statement, or raise QueryError exactly when QBO would refuse the text."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError("QueryParserError: The query provided was empty")
    return _Parser(text, _tokenize(text)).statement()


class _Parser:
    """Recursive descent over the token list; every failure is a QueryError."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0

    def statement(self) -> Query:
        self.keyword("SELECT")
        is_count = self.select_list()
        self.keyword("FROM")
        entity = self.entity()
        conditions = self.where(entity)
        order_by = self.order_by(entity)
        start = self.integer_clause("STARTPOSITION", 1)
        maximum = self.integer_clause("MAXRESULTS", DEFAULT_MAX_RESULTS)
        if self.peek() is not None:
            self.fail('<EOF>, "and", "orderby", "startposition" or "maxresults"')
        _check_max_results(maximum)
        # STARTPOSITION 0 passes QBO's validation (intuit/QuickBooks-V3-DotNET-SDK#111 sends it); it means 1.
        return Query(entity, is_count, conditions, order_by, max(start, 1), maximum)

    def peek(self) -> _Token | None:
        token = self.tokens[self.index] if self.index < len(self.tokens) else None
        if token is not None and token.kind == "error":
            raise _lexical_error(self.text, token.pos)
        return token

    def take(self, expected: str) -> _Token:
        token = self.peek()
        if token is None:
            self.fail(expected)
        self.index += 1
        return token

    def accept_word(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.word == word:
            self.index += 1
            return True
        return False

    def accept_symbol(self, symbol: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "symbol" and token.text == symbol:
            self.index += 1
            return True
        return False

    def keyword(self, word: str) -> None:
        if not self.accept_word(word):
            self.fail(f'"{word.lower()}"')

    def symbol(self, symbol: str) -> None:
        if not self.accept_symbol(symbol):
            self.fail(f'"{symbol}"')

    def fail(self, expected: str, hint: str = "") -> NoReturn:
        token = self.peek()
        if token is None:
            raise QueryError(f'QueryParserError: Encountered "<EOF>". Was expecting: {expected}')
        line, column = _line_column(self.text, token.pos)
        hint = hint or _UNSUPPORTED_WORDS.get(token.word, "")
        raise QueryError(
            f'QueryParserError: Encountered "{token.text}" at line {line}, column {column}. '
            f"Was expecting: {expected}" + (f". {hint}" if hint else "")
        )

    def select_list(self) -> bool:
        if self.accept_symbol("*"):
            return False
        if self.accept_word("COUNT"):
            self.symbol("(")
            self.symbol("*")
            self.symbol(")")
            return True
        following = self.tokens[self.index + 1] if self.index + 1 < len(self.tokens) else None
        if following is not None and following.text == "(":
            self.fail('"*" or "count"', "The only function is COUNT(*)")
        self.fail('"*" or "count"', "Selecting properties is not supported; queries return whole entities")

    def entity(self) -> str:
        token = self.take("an entity name")
        if token.kind != "word":
            self.index -= 1
            self.fail("an entity name")
        entity = _ENTITY_BY_KEY.get(token.text.lower())
        if entity is None:
            raise _invalid(f"Entity {token.text} is not supported")
        return entity

    def where(self, entity: str) -> tuple[Condition, ...]:
        if not self.accept_word("WHERE"):
            return ()
        conditions = [self.condition(entity)]
        while self.accept_word("AND"):
            conditions.append(self.condition(entity))
        return tuple(conditions)

    def condition(self, entity: str) -> Condition:
        field = self.field_name(entity, _FILTERABLE[entity], "queryable")
        op = self.operator()
        values = self.value_list() if op == "in" else (self.value(),)
        return _make_condition(field, op, values)

    def field_name(self, entity: str, allowed: frozenset[str], what: str) -> str:
        token = self.take("a property name")
        if token.kind != "word":
            self.index -= 1
            self.fail("a property name")
        for name in allowed:
            if name.lower() == token.text.lower():
                return name
        if token.word in _UNSUPPORTED_WORDS:
            self.index -= 1
            self.fail("a property name")
        raise _invalid(f"property '{token.text}' is not {what} for Entity {entity}")

    def operator(self) -> str:
        if self.accept_word("IN"):
            return "in"
        if self.accept_word("LIKE"):
            return "like"
        token = self.peek()
        if token is not None and token.kind == "symbol" and token.text in _COMPARISONS:
            self.index += 1
            return token.text
        self.fail('"in", "like", "=", "<", ">", "<=" or ">="',
                  "The operators are IN, =, <, >, <=, >= and LIKE")

    def value_list(self) -> tuple[_Token, ...]:
        self.symbol("(")
        values = [self.value()]
        while self.accept_symbol(","):
            values.append(self.value())
        self.symbol(")")
        return tuple(values)

    def value(self) -> _Token:
        token = self.take("a value")
        if token.kind in ("string", "number") or token.word in ("TRUE", "FALSE", "CURRENT_DATE"):
            return token
        self.index -= 1
        self.fail("a quoted string, a number, true, false or CURRENT_DATE")

    def order_by(self, entity: str) -> tuple[OrderKey, ...]:
        if not self.accept_word("ORDERBY"):
            # Intuit's own Payment example writes "Order By" (FACTS.md section 5), so both spellings parse.
            if not self.accept_word("ORDER"):
                return ()
            self.keyword("BY")
        sortable = _ONLY_SORTABLE.get(entity) or (
            (_FILTERABLE[entity] - _NOT_SORTABLE) | _EXTRA_SORTABLE.get(entity, frozenset()))
        keys = [self.order_key(entity, sortable)]
        while self.accept_symbol(","):
            keys.append(self.order_key(entity, sortable))
        return tuple(keys)

    def order_key(self, entity: str, sortable: frozenset[str]) -> OrderKey:
        field = self.field_name(entity, sortable, "sortable")
        descending = self.accept_word("DESC")
        if not descending:
            self.accept_word("ASC")
        return OrderKey(field, _path(field), _KINDS.get(field, STRING), descending)

    def integer_clause(self, word: str, default: int) -> int:
        if not self.accept_word(word):
            return default
        token = self.take("an integer")
        if token.kind != "number" or not token.text.isdigit():
            self.index -= 1
            self.fail("a non-negative integer")
        try:
            return int(token.text)
        except ValueError:  # more digits than int() accepts from text
            raise _invalid(f"value {token.text[:20]}... is too large") from None


def _check_max_results(maximum: int) -> None:
    if maximum > MAX_MAX_RESULTS:
        # Verbatim QBO text (ruckus/quickbooks-ruby#24); the limit is FACTS.md section 4.4.
        raise _invalid(f"value {maximum} is too large. Max allowed value is {MAX_MAX_RESULTS}")
    if maximum < 1:
        raise _invalid(f"value {maximum} is too small. Min allowed value is 1")


def _path(field: str) -> tuple[str, ...]:
    member = _MEMBER.get(field) or ("value" if field.endswith("Ref") else None)
    return (*field.split("."), member) if member else tuple(field.split("."))


def _make_condition(field: str, op: str, tokens: tuple[_Token, ...]) -> Condition:
    kind = _KINDS.get(field, STRING)
    if field == "Id" and op not in ("=", "in"):
        raise _invalid(f"operator {op.upper()} is not supported for property Id; use = or IN")
    if op == "=" and tokens[0].kind == "string" and not _unquote(tokens[0].text).strip():
        return Condition(field, _path(field), kind, "null", ())  # ' ' is QBO's null (FACTS.md section 5)
    if op == "like" and (kind != STRING or tokens[0].kind != "string"):
        raise _invalid(f"LIKE needs a quoted string and a text property, not {field}")
    values = tuple(_literal(field, kind, token) for token in tokens)
    return Condition(field, _path(field), kind, op, values)


def _unquote(text: str) -> str:
    return _ESCAPE.sub(r"\1", text[1:-1])


def _literal(field: str, kind: str, token: _Token) -> Any:
    raw = _unquote(token.text) if token.kind == "string" else token.text
    if token.word == "CURRENT_DATE" and kind == INSTANT:
        return CURRENT_DATE
    if token.word in ("TRUE", "FALSE", "CURRENT_DATE") and kind != BOOL:
        raise _invalid(f"value {token.text} is not valid for property {field}")
    value = _converter(kind, UTC)(raw)
    if value is None:
        raise _invalid(f"value {token.text} is not valid for property {field}")
    # Times stay text until the query runs: without an offset they are read in the company's zone.
    return raw if kind == INSTANT else value


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value).casefold()
    return None


def _as_id(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _as_number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None  # NaN would make every comparison raise


def _as_instant(value: Any, zone: tzinfo) -> float | None:
    """Seconds since the epoch; a value without an offset (a date, say) is read in ``zone``."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        return moment.timestamp()
    except (ValueError, OverflowError):
        return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


_CONVERTERS: MappingProxyType[str, Callable[[Any], Any]] = MappingProxyType({
    STRING: _as_text, ID: _as_id, NUMBER: _as_number, BOOL: _as_bool,
})


def _converter(kind: str, zone: tzinfo) -> Callable[[Any], Any]:
    if kind == INSTANT:
        return lambda value: _as_instant(value, zone)
    return _CONVERTERS[kind]


@dataclass(frozen=True)
class _Context:
    today: date
    zone: tzinfo


def execute(
    query: Query, rows: Sequence[dict[str, Any]], *, today: date | None = None, zone: tzinfo = UTC,
    id_ordered: bool = False,
) -> QueryResult:
    """Run ``query`` over every object of its entity in a realm and return one page (rows are not copied).

    Matching: dotted paths walk nested objects, references compare their "value", PrimaryEmailAddr its
    "Address"; text compares case-insensitively, amounts as decimals, dates and times as instants (a value
    without an offset, such as a TxnDate, is read in ``zone``, the company's time zone; CURRENT_DATE is
    ``today``, by default today in ``zone``). A row without the field never matches a condition on it,
    except QBO's null test ``= ' '``. Name lists return only active objects unless a condition names Active.
    QBO documents no default order (FACTS.md section 13: UNCONFIRMED), so without ORDERBY rows come in
    numeric Id order, ascending; ORDERBY ties also fall back to Id order. ``id_ordered=True`` says ``rows`` are
    in that order already (the store knows): a query without ORDERBY, or ordered by Id ascending, then pages
    without sorting or counting.
    """
    context = _Context(today or datetime.now(zone).date(), zone)
    matches = _matching(query, rows, context)
    if id_ordered and _in_id_order(query.order_by) and not query.is_count:
        # Rows already in Id order (the realm says so): the page is the matches from STARTPOSITION on, read
        # only that far and not sorted; the same page as below, but not counted (total_count None).
        first = query.start_position - 1
        page = list(islice(matches, first, first + query.max_results))
        return QueryResult(query.entity, page, None, query.start_position, query.max_results, None)
    if query.is_count:
        total = sum(1 for _ in matches)
        return QueryResult(query.entity, [], total, query.start_position, query.max_results, total)
    found = list(matches)
    page = _page(query, found, context.zone)
    return QueryResult(query.entity, page, None, query.start_position, query.max_results, len(found))


def _in_id_order(order_by: tuple[OrderKey, ...]) -> bool:
    """Whether rows in Id order are already in this ORDERBY's order: none (Id order), or ``ORDERBY Id [ASC]``."""
    return not order_by or (len(order_by) == 1 and order_by[0].path == ("Id",) and not order_by[0].descending)


def _matching(query: Query, rows: Iterable[dict[str, Any]], context: _Context) -> Iterable[dict[str, Any]]:
    tests = [_predicate(condition, context) for condition in query.conditions]
    if query.entity in _HAS_ACTIVE and not any(c.field == "Active" for c in query.conditions):
        tests.append(_is_active)
    if not tests:
        return rows
    if len(tests) == 1:
        return filter(tests[0], rows)
    return (row for row in rows if all(test(row) for test in tests))


def _is_active(row: dict[str, Any]) -> bool:
    return row.get("Active", True) is not False  # Active defaults to true (FACTS.md section 9.1)


def _getter(path: tuple[str, ...]) -> Callable[[dict[str, Any]], Any]:
    if len(path) == 1:
        (key,) = path
        return lambda row: row.get(key)
    if len(path) == 2:
        outer, inner = path
        return lambda row: value.get(inner) if isinstance(value := row.get(outer), dict) else None

    def get(row: dict[str, Any]) -> Any:
        value: Any = row
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return get


def _resolve(kind: str, value: Any, context: _Context) -> Any:
    if kind != INSTANT:
        return value
    return _as_instant(context.today.isoformat() if value is CURRENT_DATE else value, context.zone)


def _predicate(condition: Condition, context: _Context) -> Callable[[dict[str, Any]], bool]:
    get = _getter(condition.path)
    convert = _converter(condition.kind, context.zone)
    values = [_resolve(condition.kind, value, context) for value in condition.values]
    if condition.op == "null":
        return lambda row: get(row) in (None, "", " ")
    if condition.op == "in":
        allowed = frozenset(values)
        return lambda row: convert(get(row)) in allowed
    if condition.op == "like":
        pattern = _like_pattern(values[0])
        return lambda row: (text := _as_text(get(row))) is not None and pattern.fullmatch(text) is not None
    compare, target = _COMPARISONS[condition.op], values[0]
    return lambda row: (value := convert(get(row))) is not None and compare(value, target)


def _like_pattern(pattern: str) -> re.Pattern[str]:
    # % is QBO's only wildcard (FACTS.md section 5); everything else, _ included, is literal.
    return re.compile(".*".join(re.escape(part) for part in pattern.split("%")), re.DOTALL)


def _page(query: Query, found: list[dict[str, Any]], zone: tzinfo) -> list[dict[str, Any]]:
    first = query.start_position - 1
    if first >= len(found):
        return []
    # nsmallest keeps sorted()'s order and stability but only holds one page's worth of rows in its heap.
    ordered = heapq.nsmallest(first + query.max_results, found, key=_sort_key(query.order_by, zone))
    return ordered[first:]


def _id_order(value: Any) -> tuple[int, int, str]:
    """Numeric order for digit Ids without int() (no digit-count limit), then odd Ids by text, then none."""
    if value is None:
        return (2, 0, "")
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and text.isdigit():
        digits = text.lstrip("0")
        return (0, len(digits), digits)
    return (1, 0, text)


class _Descending:
    """Inverts the order of a wrapped value so one ascending sort can mix ASC and DESC keys."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        # Tuple comparison asks == before <, so equal values must say so for the Id tie-break to run.
        return isinstance(other, _Descending) and bool(self.value == other.value)


def _order_converter(kind: str, zone: tzinfo) -> Callable[[Any], Any]:
    if kind == ID:
        return lambda value: None if _as_id(value) is None else _id_order(value)
    return _converter(kind, zone)


def _sort_key(order_by: tuple[OrderKey, ...], zone: tzinfo) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    parts = [(_getter(key.path), _order_converter(key.kind, zone), key.descending) for key in order_by]

    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        out: list[Any] = []
        for get, convert, descending in parts:
            value = convert(get(row))
            # Rows lacking the field sort last either way; (1, 0) never compares with a real value.
            out.append((1, 0) if value is None else (0, _Descending(value) if descending else value))
        out.append(_id_order(row.get("Id")))
        return tuple(out)

    return key

