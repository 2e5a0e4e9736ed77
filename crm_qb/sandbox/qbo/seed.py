"""A deterministic, realistic QBO realm: list entities, customers and 18 months of sales transactions.

``generate_realm`` yields ``(entity name, QBO JSON object)`` pairs shaped like Intuit's samples in
``qbo/payloads/``, in dependency order: Preferences, CompanyInfo, Term, PaymentMethod, Item, Vendor, Employee,
Customer (parents before their jobs), then transactions in Id order, which is date order (an invoice before
the payments applied to it, an estimate before the invoice it became).

Money, quantities and exchange rates are ``Decimal``; serialise them as bare JSON numbers (the sandbox's
``jsonio.dumps`` does; ``json.dumps(obj, default=float)`` is also exact here because no value has more than
15 significant digits). The same arguments always give the same output: one seeded ``random.Random`` drives
everything, exchange rates are a pure function of the date, and ``today`` is the only link to the calendar.
MetaData times carry US Pacific offsets (-08:00 / -07:00), the default company zone, as in Intuit's samples.

Ledger rules the output keeps: line Amount = Qty x UnitPrice (half-up to cents); TotalAmt = sum of line
amounts; a payment's lines apply only to earlier invoices of the same customer, each invoice's Balance is its
TotalAmt minus what was applied and it links back to those payments; Customer Balance = open invoice balances
- unapplied payments - unapplied credit memos; BalanceWithJobs adds the jobs' BalanceWithJobs; foreign
amounts carry ExchangeRate (home units per foreign unit) and HomeTotalAmt/HomeBalance = amount x rate.
"""

from __future__ import annotations

import math
import random
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType

from .currencies import NAMES as CURRENCY_NAMES
from .currencies import USD_PER_UNIT

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
RATE_PLACES = Decimal("0.00000001")
HISTORY_DAYS = 548  # 18 months of transactions, ending today
THANKS = "Thank you for your business and have a great day!"

# Estimates, invoices, sales receipts, credit memos, payments: the order of same-day transactions.
ESTIMATE, INVOICE, SALES_RECEIPT, CREDIT_MEMO, PAYMENT = range(5)
KIND_NAMES = ("Estimate", "Invoice", "SalesReceipt", "CreditMemo", "Payment")

TERMS = (("Due on receipt", 0), ("Net 15", 15), ("Net 30", 30), ("Net 60", 60))
TERM_WEIGHTS = (20, 20, 50, 10)
PAYMENT_METHODS = (("Cash", "NON_CREDIT_CARD"), ("Check", "NON_CREDIT_CARD"), ("Visa", "CREDIT_CARD"),
                   ("MasterCard", "CREDIT_CARD"), ("American Express", "CREDIT_CARD"),
                   ("Discover", "CREDIT_CARD"), ("Direct Debit", "NON_CREDIT_CARD"))
CHECK = 1
# Service items: name, description, unit price in the home currency.
ITEMS = (
    ("Consulting", "Consulting, per hour", "150.00"), ("Design", "Custom Design", "75.00"),
    ("Installation", "Installation labour, per hour", "50.00"),
    ("Maintenance", "Monthly maintenance plan", "95.00"),
    ("Training", "On-site training session", "120.00"), ("Hours", "Hourly labour", "85.00"),
    ("Pest Control", "Pest Control Services", "35.00"), ("Gardening", "Weekly gardening", "25.00"),
    ("Façade Cleaning", "Façade cleaning, per square metre", "12.75"),
    ("Café Catering", "Café catering per guest", "18.50"),
    ("Inspection", "Safety inspection and report", "240.00"),
    ("Support Plan", "Annual support plan", "1200.00"), ("Translation", "Translation, per page", "42.00"),
    ("Photography", "Event photography, per hour", "110.00"),
)
_ITEM_INDEXES = tuple(range(len(ITEMS)))
QUANTITIES = tuple(Decimal(q) for q in ("1", "1", "1", "2", "2", "3", "4", "5", "8", "10", "0.5", "1.5",
                                         "2.25", "4.5", "12"))
LINE_COUNTS = (1, 1, 1, 1, 2, 2, 2, 3, 3, 4)
ESTIMATE_STATUSES = ("Pending",) * 7 + ("Accepted",) * 4 + ("Closed",) * 6 + ("Rejected",) * 3

VENDORS = ("Books by Bessie", "Norton Lumber and Building Materials", "Østergaard Værktøj ApS",
           "Hicks Hardware", "Lee Advertising")
EMPLOYEES = (("Emily", "Platt"), ("John", "Johnson"), ("Zoë", "Lefèvre"))

GIVEN = ("James", "Mary", "Zoë", "José", "Siobhán", "Chloé", "Björn", "François", "Renée", "Ana",
         "Mohammed", "Wei", "Priya", "Liam", "Olivia", "Noah", "Emma", "Łukasz", "Søren", "Ngozi",
         "Hiroshi", "Aoife", "Matthäus", "Inés", "Zoltán", "Dmitri", "Fatima", "Kai", "Hannah", "Raúl",
         "Amélie", "Jürgen", "Seán", "Maëlle", "Nuño", "Ingrid", "Tomás", "Grace", "Oliver", "Sophie",
         "Lucas", "Mia", "Ethan", "Isabella", "Daniel", "Chiara", "Mateo", "Eleanor", "Samuel", "Niamh",
         "Benedikt", "Åsa", "Yusuf", "Camille", "Henry", "Lena", "Marco", "Julia", "Peter", "Rosa", "Arjun",
         "Clara", "Felix", "Leah")
FAMILY = ("O'Brien", "Müller", "García", "Smith", "Nguyen", "D'Angelo", "Johnson", "Kowalski",
          "Ó Súilleabháin", "Schröder", "Dubois", "Martínez", "Lee", "Brown", "O'Neill", "McAllister",
          "van der Berg", "Patel", "Rossi", "Fernández", "Åkesson", "Nakamura", "Okafor", "Wójcik",
          "Lefèvre", "Papadopoulos", "MacDonald", "St. Pierre", "Hernández-López", "Williams", "Jones",
          "Taylor", "Davies", "Evans", "Wilson", "Thomas", "Roberts", "Walker", "Wright", "Robinson",
          "Thompson", "White", "Hughes", "Edwards", "Green", "Hall", "Wood", "Harris", "Lewis", "Martin",
          "Jackson", "Clarke", "Clark", "Turner", "Hill", "Scott", "Cooper", "Morris", "Ward", "Moore",
          "King", "Watson", "Baker", "Young", "Allen", "Mitchell", "Anderson", "Schmidt", "Schneider",
          "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Schäfer", "Koch", "Bauer",
          "Richter", "Klein", "Wolf", "Neumann", "Zimmermann", "Krüger", "Hofmann", "Lange", "Bernard",
          "Petit", "Durand", "Leroy", "Moreau", "Simon", "Laurent", "Michel", "Lefebvre", "Roux",
          "Fournier", "Girard", "Bonnet", "López", "González", "Rodríguez", "Sánchez", "Pérez", "Gómez",
          "Díaz", "Muñoz", "Álvarez", "Romero", "Navarro", "Tremblay", "Gagnon", "Roy", "Côté", "Bouchard",
          "Gauthier", "Morin", "Lavoie", "Fortin", "Gagné", "Ouellet", "Pelletier", "Bélanger", "Lévesque",
          "Bergeron", "Leblanc", "Paquette", "Girouard", "Kim", "Park", "Chen", "Wang", "Singh", "Kaur",
          "Ali", "Khan", "Costa", "Silva", "Santos", "Ferreira", "Pereira", "Murphy", "Kelly")
TITLES = ("Mr", "Ms", "Mrs", "Dr", "Prof.")
TRADES = ("Plumbing", "Landscaping", "Bakery", "Café", "Roofing", "Electrical", "Catering", "Consulting",
          "Design Studio", "Auto Repair", "Dental Practice", "Bookshop", "Florist", "Brewing Co.",
          "Yoga Studio", "Architects", "Joinery", "Surf Shop", "Pet Grooming", "Veterinary Clinic",
          "Print Shop", "Bistro", "Hardware", "Cleaning Services", "Tailoring", "Pharmacy", "Photography",
          "Fitness", "Gallery")
COMPANY_SUFFIXES = ("", "", "", " LLC", " Inc.", " & Sons", " & Co.", " Ltd", " GmbH", " S.A.R.L.",
                    " Partners")
ADJECTIVES = ("Blue Heron", "Golden Gate", "Red Rock", "Silver Birch", "Cool", "Sunny Side", "Old Mill",
              "North Star", "Green Valley", "Harbour View", "Maple Leaf", "Cedar Grove", "Bright Spark",
              "Little Acorn", "Riverside", "Highland", "Ocean Breeze", "Stonebridge", "Willow Creek",
              "Lakeside")
PROJECTS = ("Kitchen Remodel", "Office Fit-out", "Garden Redesign", "Roof Repair", "Annual Maintenance",
            "Website Refresh", "Spring Event", "Warehouse Expansion", "Bathroom Renovation", "Shopfront")
NOTES = ("Prefers email before calling.", "Gate code 4471.", "Invoices to accounts payable, please.",
         "Referred by a neighbour.", "Closed on Mondays.")
PRIVATE_NOTES = ("Paid at the counter.", "Walk-in sale.", "A private note.", "Market stall sale.")
LONG_WORDS = ("Maximiliana", "Alexandrina", "Wilhelmina", "Konstantinopoulou", "Featherstonehaugh",
              "Cholmondeley", "Ó Súilleabháin", "Llanfairpwllgwyngyll", "Wolfeschlegelsteinhausen", "Zoë")

# Address locales: country (ISO alpha-3), cities (name, subdivision, postal prefix, latitude, longitude),
# streets, and whether the house number follows the street name.
_US = ("USA", (("Half Moon Bay", "CA", "940", 37.4636, -122.4286),
               ("Portland", "OR", "972", 45.5152, -122.6784),
               ("Austin", "TX", "787", 30.2672, -97.7431), ("Middlefield", "CA", "943", 37.4238, -122.1141),
               ("Brooklyn", "NY", "112", 40.6782, -73.9442), ("Denver", "CO", "802", 39.7392, -104.9903),
               ("Asheville", "NC", "288", 35.5951, -82.5515), ("Madison", "WI", "537", 43.0731, -89.4012)),
       ("Ocean Dr.", "Main Street", "Cypress Hill Ave.", "Elm St.", "Sunset Blvd.", "Lincoln Ave.",
        "Maple Court", "Harbor Way"), False)
_CA = ("CAN", (("Toronto", "ON", "M5V", 43.6532, -79.3832), ("Montréal", "QC", "H2X", 45.5019, -73.5674),
               ("Vancouver", "BC", "V6B", 49.2827, -123.1207), ("Québec", "QC", "G1R", 46.8139, -71.2080),
               ("Halifax", "NS", "B3H", 44.6488, -63.5752)),
       ("rue Saint-Denis", "King St W", "Robson St", "rue Sainte-Catherine", "Spring Garden Rd"), False)
_GB = ("GBR", (("London", "England", "EC1A", 51.5072, -0.1276),
               ("Manchester", "England", "M1", 53.4808, -2.2426),
               ("Edinburgh", "Scotland", "EH1", 55.9533, -3.1883),
               ("Cardiff", "Wales", "CF10", 51.4816, -3.1791),
               ("Belfast", "Northern Ireland", "BT1", 54.5973, -5.9301)),
       ("High Street", "Baker Street", "Church Lane", "Station Road", "Queen's Road"), False)
_EU = ("DEU", (("München", "BY", "80", 48.1351, 11.5820), ("Köln", "NW", "50", 50.9375, 6.9603),
               ("Düsseldorf", "NW", "40", 51.2277, 6.7735), ("Hamburg", "HH", "20", 53.5511, 9.9937)),
       ("Hauptstraße", "Königsallee", "Schillerstraße", "Am Weißen Steinbruch", "Goethestraße"), True)
LOCALES = MappingProxyType({"USD": _US, "CAD": _CA, "GBP": _GB, "EUR": _EU})
COUNTRIES = MappingProxyType({"USD": "US", "CAD": "CA", "GBP": "GB", "EUR": "DE"})
FOREIGN_CHOICES = ("EUR", "GBP", "CAD", "USD")
ACCOUNTS = MappingProxyType({"Undeposited Funds": "4", "Services": "1", "Checking": "35"})


def exchange_rate(source: str, home: str, day: date) -> Decimal:
    """Home units per one ``source`` unit on ``day``: drifts a few percent around the sandbox's table rate."""
    if source == home:
        return Decimal(1)
    return (_usd_value(source, day) / _usd_value(home, day)).quantize(RATE_PLACES, ROUND_HALF_UP)


def _usd_value(code: str, day: date) -> Decimal:
    """USD per unit of ``code`` on ``day``: the table rate moved by two slow waves (10 decimals)."""
    if code == "USD":
        return Decimal(1)
    # Float maths only shapes the curve; cutting it to 10 decimals hides any last-bit libm differences.
    phase = sum(map(ord, code)) / 7.0
    ordinal = day.toordinal()
    drift = 0.03 * math.sin(ordinal / 58.0 + phase) + 0.008 * math.sin(ordinal / 6.3 + 2 * phase)
    return USD_PER_UNIT[code] * Decimal(f"{1 + drift:.10f}")


def pacific_offset(day: date) -> str:
    """UTC offset of US Pacific time on ``day``: -07:00 from March's 2nd Sunday to November's 1st."""
    dst_start = 8 + (6 - date(day.year, 3, 1).weekday()) % 7
    dst_end = 1 + (6 - date(day.year, 11, 1).weekday()) % 7
    in_dst = date(day.year, 3, dst_start) <= day < date(day.year, 11, dst_end)
    return "-07:00" if in_dst else "-08:00"


class _Calendar:
    """Date strings and MetaData times by day ordinal, cached for the run (not across runs)."""

    def __init__(self) -> None:
        self._days: dict[int, tuple[str, str]] = {}

    def iso(self, ordinal: int) -> str:
        return self._day(ordinal)[0]

    def stamp(self, ordinal: int, seconds: int) -> str:
        iso, offset = self._day(ordinal)
        return f"{iso}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{offset}"

    def meta(self, created: int, updated: int, salt: int) -> dict:
        """MetaData with business-hours times derived from ``salt``; an update never precedes the create."""
        create_secs = 28800 + (salt * 7919) % 32400
        update_secs = 28800 + (salt * 104729) % 32400
        if updated <= created:
            updated, update_secs = created, max(create_secs, update_secs)
        return {"CreateTime": self.stamp(created, create_secs),
                "LastUpdatedTime": self.stamp(updated, update_secs)}

    def _day(self, ordinal: int) -> tuple[str, str]:
        cached = self._days.get(ordinal)
        if cached is None:
            day = date.fromordinal(ordinal)
            cached = self._days[ordinal] = (day.isoformat(), pacific_offset(day))
        return cached


@dataclass(slots=True)
class _Customer:
    """What transactions need to know about a customer, and its running balance."""

    id: str
    display: str
    given: str
    family: str
    company: str | None
    email: str | None
    currency: str
    term: int
    method: int
    delivery: str
    parent: int | None
    level: int
    fqn: str
    bill: tuple
    ship: tuple
    created: int
    extras: dict
    balance: Decimal = ZERO
    with_jobs: Decimal = ZERO
    has_jobs: bool = False
    active: bool = True


@dataclass(slots=True)
class _Txn:
    """One planned transaction; ``balance`` is the open invoice balance, unapplied payment or credit."""

    kind: int
    customer: int
    day: int
    seq: int
    lines: tuple = ()
    total: Decimal = ZERO
    balance: Decimal = ZERO
    links: list = field(default_factory=list)
    updated: int = 0
    status: str = ""
    id: str = ""
    doc: str = ""


class _Names:
    """DisplayNames already taken (customers, vendors, employees share one namespace in QBO)."""

    def __init__(self) -> None:
        self._used: set[str] = set()
        self._next: dict[str, int] = {}

    def claim(self, name: str) -> str:
        """Return ``name``, or ``name 2``, ``name 3``... when taken; the result is then taken."""
        candidate = name
        while candidate in self._used:
            number = self._next.get(name, 2)
            self._next[name] = number + 1
            candidate = f"{name} {number}"
        self._used.add(candidate)
        return candidate


def ascii_slug(text: str, separator: str = ".") -> str:
    """Lower-case ASCII letters and digits of ``text`` (accents folded, apostrophes dropped), words joined."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    words = "".join(ch if ch.isalnum() or ch == " " else ("" if ch == "'" else " ") for ch in folded).split()
    return separator.join(words)


def _long_text(limit: int, start: int = 0) -> str:
    """Words from LONG_WORDS, exactly ``limit`` characters long, neither starting nor ending with a space."""
    words = (LONG_WORDS[(start + n) % len(LONG_WORDS)] for n in range(limit))
    text = " ".join(words)[:limit]
    return text[:-1] + "x" if text.endswith(" ") else text


class _Realm:
    """The state of one generation run: the random stream, calendar, names and the planned ledger."""

    def __init__(self, seed: int, home: str, multicurrency: bool, today: date) -> None:
        self.rng = random.Random(seed)
        self.random = self.rng.random
        self.home = home
        self.multicurrency = multicurrency
        self.today = today.toordinal()
        self.start = self.today - HISTORY_DAYS + 1
        self.calendar = _Calendar()
        self.names = _Names()
        self.foreign = tuple(c for c in FOREIGN_CHOICES if c != home)[:3]
        self.customers: list[_Customer] = []
        self.txns: list[_Txn] = []
        self.address_id = 0
        self.rates: dict[tuple[str, int], Decimal] = {}
        self.prices = {code: self._price_list(code) for code in (home, *self.foreign)}

    def pick(self, options: Sequence):
        return options[int(self.random() * len(options))]

    def next_address_id(self) -> str:
        self.address_id += 1
        return str(self.address_id)

    def rate(self, currency: str, ordinal: int) -> Decimal:
        key = (currency, ordinal)
        cached = self.rates.get(key)
        if cached is None:
            cached = self.rates[key] = exchange_rate(currency, self.home, date.fromordinal(ordinal))
        return cached

    def _price_list(self, code: str) -> tuple[tuple[Decimal, tuple[Decimal, ...]], ...]:
        """Per item: unit price in ``code`` (converted, whole units abroad) and the amount per quantity."""
        rate = Decimal(1) if code == self.home else USD_PER_UNIT[code] / USD_PER_UNIT[self.home]
        table = []
        for _, _, price in ITEMS:
            unit = Decimal(price) if code == self.home else (Decimal(price) / rate).quantize(Decimal(1))
            unit = unit.quantize(CENT)
            table.append((unit, tuple((q * unit).quantize(CENT, ROUND_HALF_UP) for q in QUANTITIES)))
        return tuple(table)


def _envelope(obj_id: str, meta: dict, fields: dict) -> dict:
    """A complete QBO object: Id, SyncToken "0", the fields, MetaData, domain and sparse."""
    return {"Id": obj_id, "SyncToken": "0", **fields, "MetaData": meta, "domain": "QBO", "sparse": False}


def _ref(value: str, name: str | None = None) -> dict:
    return {"value": value} if name is None else {"value": value, "name": name}


def _currency_ref(code: str) -> dict:
    return {"value": code, "name": CURRENCY_NAMES[code]}


# --- list entities ------------------------------------------------------------------------------------------


def _preferences(realm: _Realm) -> dict:
    created = realm.start - 400
    return _envelope("1", realm.calendar.meta(created, realm.start, 1), {
        "AccountingInfoPrefs": {"TrackDepartments": False, "ClassTrackingPerTxn": False,
                                "CustomerTerminology": "Customers"},
        "SalesFormsPrefs": {"CustomTxnNumbers": False, "AllowDeposit": True, "AllowDiscount": True,
                            "DefaultTerms": _ref("3"), "DefaultCustomerMessage": THANKS,
                            "EstimateMessage": "We look forward to working with you."},
        "CurrencyPrefs": {"HomeCurrency": _ref(realm.home), "MultiCurrencyEnabled": realm.multicurrency},
        "TaxPrefs": {"UsingSalesTax": False},
    })


def _company_info(realm: _Realm) -> dict:
    name = f"{realm.pick(ADJECTIVES)} {realm.pick(TRADES)}"
    address = _address_fields(realm, _new_address(realm, realm.home))
    created = realm.start - 400
    return _envelope("1", realm.calendar.meta(created, created, 2), {
        "CompanyName": name, "LegalName": f"{name} Holdings", "CompanyAddr": address,
        "CustomerCommunicationAddr": dict(address), "LegalAddr": dict(address),
        "PrimaryPhone": {"FreeFormNumber": _phone(realm, realm.home)},
        "Email": {"Address": f"books@{ascii_slug(name, '-')}.example.com"},
        "WebAddr": {"URI": f"https://{ascii_slug(name, '-')}.example.com"},
        "Country": COUNTRIES[realm.home], "CompanyStartDate": realm.calendar.iso(created),
        "FiscalYearStartMonth": "January", "SupportedLanguages": "en",
    })


def _terms(realm: _Realm) -> Iterator[tuple[str, dict]]:
    for n, (name, days) in enumerate(TERMS, 1):
        meta = realm.calendar.meta(realm.start - 400, realm.start - 400, n)
        yield "Term", _envelope(str(n), meta, {"Name": name, "Active": True, "Type": "STANDARD",
                                               "DiscountPercent": 0, "DueDays": days})


def _payment_methods(realm: _Realm) -> Iterator[tuple[str, dict]]:
    for n, (name, kind) in enumerate(PAYMENT_METHODS, 1):
        meta = realm.calendar.meta(realm.start - 400, realm.start - 400, n)
        yield "PaymentMethod", _envelope(str(n), meta, {"Name": name, "Active": True, "Type": kind})


def _items(realm: _Realm) -> Iterator[tuple[str, dict]]:
    for n, (name, description, _) in enumerate(ITEMS, 1):
        meta = realm.calendar.meta(realm.start - 390, realm.start - 390 + n, n)
        yield "Item", _envelope(str(n), meta, {
            "Name": name, "Description": description, "Active": True, "FullyQualifiedName": name,
            "Taxable": False, "UnitPrice": realm.prices[realm.home][n - 1][0], "Type": "Service",
            "IncomeAccountRef": _ref(ACCOUNTS["Services"], "Services"), "PurchaseCost": 0,
            "TrackQtyOnHand": False,
        })


def _vendors_and_employees(realm: _Realm) -> Iterator[tuple[str, dict]]:
    """A few vendors and employees; their DisplayNames are taken so customers never reuse them."""
    created = realm.start - 380
    for n, name in enumerate(VENDORS, 1):
        yield "Vendor", _envelope(str(n), realm.calendar.meta(created, created + n, n), {
            "DisplayName": realm.names.claim(name), "CompanyName": name, "PrintOnCheckName": name,
            "PrimaryEmailAddr": {"Address": f"billing@{ascii_slug(name, '-')}.example.com"},
            "PrimaryPhone": {"FreeFormNumber": _phone(realm, realm.home)},
            "BillAddr": _address_fields(realm, _new_address(realm, realm.home)),
            "Balance": ZERO, "Vendor1099": False, "CurrencyRef": _currency_ref(realm.home), "Active": True,
        })
    for n, (given, family) in enumerate(EMPLOYEES, len(VENDORS) + 1):
        display = realm.names.claim(f"{given} {family}")
        yield "Employee", _envelope(str(n), realm.calendar.meta(created, created + n, n), {
            "DisplayName": display, "GivenName": given, "FamilyName": family, "PrintOnCheckName": display,
            "PrimaryPhone": {"FreeFormNumber": _phone(realm, realm.home)},
            "PrimaryAddr": _address_fields(realm, _new_address(realm, realm.home)),
            "BillableTime": False, "HiredDate": realm.calendar.iso(created - 30 * n), "Active": True,
        })


# --- customers ----------------------------------------------------------------------------------------------


def _new_address(realm: _Realm, currency: str) -> tuple:
    """An address tuple (line1, city, subdivision, postal code, country, lat, long) in the currency's land."""
    country, cities, streets, number_last = LOCALES[currency]
    city, subdivision, prefix, lat, lon = realm.pick(cities)
    number = 1 + int(realm.random() * 980)
    street = realm.pick(streets)
    line1 = f"{street} {number}" if number_last else f"{number} {street}"
    postal = _postal_code(realm, country, prefix)
    jitter_lat, jitter_lon = (realm.random() - 0.5) / 20, (realm.random() - 0.5) / 20
    return (line1, city, subdivision, postal, country, f"{lat + jitter_lat:.7f}", f"{lon + jitter_lon:.7f}")


def _postal_code(realm: _Realm, country: str, prefix: str) -> str:
    digits = [str(int(realm.random() * 10)) for _ in range(3)]
    letters = ["ABEHJLNPRSTWXY"[int(realm.random() * 14)] for _ in range(2)]
    if country == "USA":
        return prefix + digits[0] + digits[1]
    if country == "CAN":
        return f"{prefix} {digits[0]}{letters[0]}{digits[1]}"
    if country == "GBR":
        return f"{prefix} {digits[0]}{letters[0]}{letters[1]}"
    return prefix + "".join(digits)


def _address_fields(realm: _Realm, address: tuple) -> dict:
    line1, city, subdivision, postal, country, lat, lon = address
    return {"Id": realm.next_address_id(), "Line1": line1, "City": city,
            "CountrySubDivisionCode": subdivision, "PostalCode": postal, "Country": country,
            "Lat": lat, "Long": lon}


def _block_address(realm: _Realm, customer: _Customer) -> dict:
    """A transaction's bill-to block as QBO prints it: contact, company, street, city line."""
    line1, city, subdivision, postal, _, lat, lon = customer.bill
    contact = f"{customer.given} {customer.family}".strip() or customer.display
    return {"Id": realm.next_address_id(), "Line1": contact, "Line2": customer.company or customer.display,
            "Line3": line1, "Line4": f"{city}, {subdivision}  {postal}", "Lat": lat, "Long": lon}


def _phone(realm: _Realm, currency: str) -> str:
    """A phone number in a range reserved for fiction where the country has one."""
    tail = f"{int(realm.random() * 100):02d}"
    if currency == "GBP":
        return f"+44 20 7946 0{int(realm.random() * 1000):03d}"
    if currency == "EUR":
        return f"+49 30 {int(realm.random() * 9000000) + 1000000}"
    area = realm.pick(("415", "503", "512", "650", "718") if currency == "USD" else ("416", "514", "604"))
    return f"({area}) 555-01{tail}"


def _person_name(realm: _Realm) -> tuple[str, str, str | None, str]:
    """(given, family, company or None, display name) for a random individual or business customer."""
    given, family = realm.pick(GIVEN), realm.pick(FAMILY)
    roll = realm.random()
    if roll < 0.5:
        return given, family, None, f"{given} {family}"
    if roll < 0.7:
        company = f"{family} {realm.pick(TRADES)}{realm.pick(COMPANY_SUFFIXES)}"
    elif roll < 0.85:
        company = f"{realm.pick(ADJECTIVES)} {realm.pick(TRADES)}{realm.pick(COMPANY_SUFFIXES)}"
    else:
        company = f"{given}'s {realm.pick(TRADES)}"
    return given, family, company, company


# Fixed first customers so even a tiny realm has apostrophes, accents, limit-length values and jobs.
_SPECIAL = (("Siobhán", "O'Brien", None, "Siobhán O'Brien"),
            ("Zoë", "Müller", "Müller & Söhne GmbH", "Müller & Söhne GmbH"),
            ("José", "García", None, "José García"),
            ("Renée", "D'Angelo", "Zoë's Café & Bäckerei", "Zoë's Café & Bäckerei"))
_LONG = 4  # the customer index that gets values at QBO's length limits


def _plan_customers(realm: _Realm, count: int) -> None:
    """Create the customer profiles: names, currency, terms, hierarchy, addresses and creation day."""
    first_id = len(VENDORS) + len(EMPLOYEES) + 1
    for index in range(count):
        parent = _pick_parent(realm, index)
        customer = _top_customer(realm, index, count) if parent is None else _job(realm, index, parent, count)
        customer.id = str(first_id + index)
        realm.customers.append(customer)


def _pick_parent(realm: _Realm, index: int) -> int | None:
    """About 10% of customers are jobs of an earlier customer (a few jobs of jobs); index 5 always is one."""
    if index < 5 or (index != 5 and realm.random() >= 0.1):
        return None
    if index == 5:
        return 1
    parent = int(realm.random() * index)
    while realm.customers[parent].level >= 2:
        parent = realm.customers[parent].parent  # keep the tree at most three deep
    return parent


def _top_customer(realm: _Realm, index: int, count: int) -> _Customer:
    if index < len(_SPECIAL):
        given, family, company, display = _SPECIAL[index]
    elif index == _LONG:
        given, family, company = _long_text(100), _long_text(100, 3), _long_text(100, 5)
        display = _long_text(500, 7)
    else:
        given, family, company, display = _person_name(realm)
    foreign = realm.multicurrency and (index == 2 or (index > 5 and realm.random() < 0.2))
    currency = realm.pick(realm.foreign) if foreign else realm.home
    display = realm.names.claim(display)
    email = _email(realm, given, family, company, index)
    bill = _new_address(realm, currency)
    ship = bill if realm.random() < 0.7 else _new_address(realm, currency)
    term = _weighted_term(realm)
    delivery = "Email" if email and realm.random() < 0.8 else "Print"
    customer = _Customer(
        id="", display=display, given=given, family=family, company=company, email=email, currency=currency,
        term=term, method=int(realm.random() * len(PAYMENT_METHODS)), delivery=delivery, parent=None,
        level=0, fqn=display, bill=bill, ship=ship, created=_created_day(realm, index, count),
        extras=_customer_extras(realm, index, currency))
    return customer


def _created_day(realm: _Realm, index: int, count: int) -> int:
    """Customers are created in Id order, spread from a year before the history window to a week ago."""
    first = realm.start - 365
    return first + index * (realm.today - 7 - first) // max(1, count)


def _job(realm: _Realm, index: int, parent_index: int, count: int) -> _Customer:
    parent = realm.customers[parent_index]
    parent.has_jobs = True
    project = realm.pick(PROJECTS)
    display = realm.names.claim(f"{project} ({parent.family or parent.display[:40]})")
    ship = _new_address(realm, parent.currency)
    customer = _Customer(
        id="", display=display, given=parent.given, family=parent.family, company=parent.company,
        email=parent.email, currency=parent.currency, term=parent.term, method=parent.method,
        delivery=parent.delivery, parent=parent_index, level=parent.level + 1,
        fqn=f"{parent.fqn}:{display}", bill=parent.bill, ship=ship, created=0,
        extras={"BillWithParent": realm.random() < 0.5})
    customer.created = max(parent.created, _created_day(realm, index, count))
    return customer


def _weighted_term(realm: _Realm) -> int:
    roll = realm.random() * sum(TERM_WEIGHTS)
    for index, weight in enumerate(TERM_WEIGHTS):
        roll -= weight
        if roll < 0:
            return index
    return len(TERM_WEIGHTS) - 1


def _email(realm: _Realm, given: str, family: str, company: str | None, index: int) -> str | None:
    """A unique address at a reserved example domain, or None for about 8% of customers."""
    if index == _LONG:
        local = ascii_slug(given)[:80]
        return f"{local}@{'x' * (100 - len(local) - len('@.example.com'))}.example.com"
    if index >= len(_SPECIAL) and realm.random() < 0.08:
        return None
    if company and realm.random() < 0.5:
        return f"accounts{index}@{ascii_slug(company, '-')[:60]}.example.com"
    domain = realm.pick(("example.com", "example.org", "example.net"))
    return f"{ascii_slug(given)}.{ascii_slug(family)}{index}@{domain}"


def _customer_extras(realm: _Realm, index: int, currency: str) -> dict:
    """Optional fields some customers have: title, mobile, notes (limit-length for the long customer)."""
    extras: dict = {"BillWithParent": False}
    if index == _LONG:
        return {**extras, "Title": "Prof. Dr. Dr. hc", "MiddleName": _long_text(100, 2),
                "Suffix": "Jr., PhD, MBA, X", "Notes": _long_text(2000, 1),
                "Mobile": {"FreeFormNumber": "+1 (415) 555-0100 ext. 123456"}}
    if realm.random() < 0.3:
        extras["Title"] = realm.pick(TITLES)
    if realm.random() < 0.4:
        extras["Mobile"] = {"FreeFormNumber": _phone(realm, currency)}
    if realm.random() < 0.15:
        extras["Notes"] = realm.pick(NOTES)
    return extras


def _customer_object(realm: _Realm, customer: _Customer) -> dict:
    """The Customer JSON for a planned customer, with its final balances."""
    fields: dict = {"DisplayName": customer.display, "FullyQualifiedName": customer.fqn,
                    "PrintOnCheckName": (customer.company or customer.display)[:110],
                    "GivenName": customer.given, "FamilyName": customer.family}
    if customer.company:
        fields["CompanyName"] = customer.company
    if customer.email:
        fields["PrimaryEmailAddr"] = {"Address": customer.email}
    fields["PrimaryPhone"] = {"FreeFormNumber": _phone(realm, customer.currency)}
    fields["BillAddr"] = _address_fields(realm, customer.bill)
    fields["ShipAddr"] = _address_fields(realm, customer.ship)
    fields.update(customer.extras)
    fields.update({
        "Active": customer.active, "Job": customer.parent is not None, "Balance": customer.balance,
        "BalanceWithJobs": customer.with_jobs, "CurrencyRef": _currency_ref(customer.currency),
        "PreferredDeliveryMethod": customer.delivery, "Taxable": False,
        "SalesTermRef": _ref(str(customer.term + 1)), "PaymentMethodRef": _ref(str(customer.method + 1)),
    })
    if customer.parent is not None:
        fields["ParentRef"] = _ref(realm.customers[customer.parent].id)
        fields["Level"] = customer.level
    updated = min(realm.today, customer.created + int(realm.random() * 90))
    return _envelope(customer.id, realm.calendar.meta(customer.created, updated, int(customer.id)), fields)


# --- transactions -------------------------------------------------------------------------------------------


def _counts(transactions: int) -> tuple[int, int, int, int, int]:
    """How many estimates, invoices, sales receipts, credit memos and payments make ``transactions``."""
    credit_memos = max(1, transactions // 100) if transactions >= 10 else 0
    rest = transactions - credit_memos
    invoices, payments, estimates = rest * 50 // 100, rest * 25 // 100, rest * 15 // 100
    return estimates, invoices, rest - invoices - payments - estimates, credit_memos, payments


def _pick_customer(realm: _Realm) -> int:
    """A customer index, skewed towards early (long-standing) customers as real sales ledgers are."""
    roll = realm.random()
    return int(len(realm.customers) * roll * roll)


def _pick_day(realm: _Realm, customer: int) -> int:
    """A day in the history window, not before the customer existed."""
    first = max(realm.start, realm.customers[customer].created)
    return first + int(realm.random() * (realm.today - first + 1))


def _pick_lines(realm: _Realm) -> tuple[tuple[int, int], ...]:
    """One to four distinct items, each with a quantity index into QUANTITIES."""
    items = realm.rng.sample(_ITEM_INDEXES, realm.pick(LINE_COUNTS))
    return tuple((item, int(realm.random() * len(QUANTITIES))) for item in items)


def _total(realm: _Realm, customer: int, lines: tuple[tuple[int, int], ...]) -> Decimal:
    prices = realm.prices[realm.customers[customer].currency]
    return sum((prices[item][1][qty] for item, qty in lines), ZERO)


def _new_sale(realm: _Realm, kind: int, seq: int, customer: int | None = None) -> _Txn:
    """A planned sale of ``kind`` (invoice, estimate, sales receipt, credit memo) with lines and totals."""
    if customer is None:
        customer = _pick_customer(realm)
    day = _pick_day(realm, customer)
    lines = _pick_lines(realm)
    total = _total(realm, customer, lines)
    balance = total if kind in (INVOICE, CREDIT_MEMO) else ZERO
    return _Txn(kind, customer, day, seq, lines, total, balance, updated=day)


def _plan_transactions(realm: _Realm, transactions: int) -> None:
    """Plan every transaction, apply payments and convert estimates, then number them in date order."""
    estimates, invoices, receipts, credit_memos, payments = _counts(transactions)
    all_invoices = [_new_sale(realm, INVOICE, seq) for seq in range(invoices)]
    by_customer: dict[int, list[_Txn]] = {}
    for invoice in all_invoices:
        by_customer.setdefault(invoice.customer, []).append(invoice)
    open_invoices = list(all_invoices)
    planned = list(all_invoices)
    planned += [_plan_payment(realm, len(planned) + n, open_invoices, by_customer) for n in range(payments)]
    planned += [_plan_estimate(realm, len(planned) + n, all_invoices) for n in range(estimates)]
    planned += [_new_sale(realm, SALES_RECEIPT, len(planned) + n) for n in range(receipts)]
    planned += [_new_sale(realm, CREDIT_MEMO, len(planned) + n) for n in range(credit_memos)]
    planned.sort(key=lambda txn: (txn.day, txn.kind, txn.seq))
    _number(planned)
    realm.txns = planned


def _number(txns: list[_Txn]) -> None:
    """Ids in date order; invoices, sales receipts and credit memos share one DocNumber series, estimates
    have their own, as in QBO."""
    sales_doc, estimate_doc = 1001, 1001
    for n, txn in enumerate(txns, 1):
        txn.id = str(n)
        if txn.kind == ESTIMATE:
            txn.doc, estimate_doc = str(estimate_doc), estimate_doc + 1
        elif txn.kind != PAYMENT:
            txn.doc, sales_doc = str(sales_doc), sales_doc + 1


def _open_invoice(realm: _Realm, open_invoices: list[_Txn]) -> _Txn | None:
    """A random invoice with an open balance; settled ones found on the way are dropped from the list."""
    while open_invoices:
        index = int(realm.random() * len(open_invoices))
        invoice = open_invoices[index]
        if invoice.balance > 0:
            return invoice
        open_invoices[index] = open_invoices[-1]
        open_invoices.pop()
    return None


def _plan_payment(realm: _Realm, seq: int, open_invoices: list[_Txn],
                  by_customer: dict[int, list[_Txn]]) -> _Txn:
    """A payment of one open invoice (mostly in full, some partly, some clearing all the customer's open
    invoices, a few overpaid); with no open invoice left it is recorded unapplied, as a credit."""
    invoice = _open_invoice(realm, open_invoices)
    if invoice is None:
        customer = _pick_customer(realm)
        amount = Decimal(10 * (1 + int(realm.random() * 50))).quantize(CENT)
        day = _pick_day(realm, customer)
        return _Txn(PAYMENT, customer, day, seq, total=amount, balance=amount, updated=day)
    day = min(realm.today, invoice.day + int(realm.random() * 75))
    applied = _applications(realm, invoice, day, by_customer[invoice.customer])
    unapplied = Decimal(5 * (2 + int(realm.random() * 19))).quantize(CENT) if realm.random() < 0.05 else ZERO
    payment = _Txn(PAYMENT, invoice.customer, day, seq, balance=unapplied, links=applied, updated=day)
    payment.total = sum((amount for _, amount in applied), unapplied)
    for paid, amount in applied:
        paid.balance -= amount
        paid.links.append(payment)
        paid.updated = max(paid.updated, day)
    return payment


def _applications(realm: _Realm, invoice: _Txn, day: int, customer_invoices: list[_Txn]) -> list:
    """(invoice, amount) pairs a payment on ``day`` settles, starting from ``invoice``."""
    roll = realm.random()
    if roll < 0.15:
        share = (invoice.balance * (20 + int(realm.random() * 61)) / 100).quantize(CENT, ROUND_HALF_UP)
        if ZERO < share < invoice.balance:
            return [(invoice, share)]
    if roll < 0.25:
        others = [i for i in customer_invoices if i is not invoice and i.balance > 0 and i.day <= day]
        return [(invoice, invoice.balance)] + [(other, other.balance) for other in others[:9]]
    return [(invoice, invoice.balance)]


def _plan_estimate(realm: _Realm, seq: int, invoices: list[_Txn]) -> _Txn:
    """An estimate; a Closed one was converted into an invoice of the same customer, with the same lines."""
    status = realm.pick(ESTIMATE_STATUSES)
    invoice = _unconverted_invoice(realm, invoices) if status == "Closed" else None
    if invoice is None:
        estimate = _new_sale(realm, ESTIMATE, seq)
    else:
        first = max(realm.start, realm.customers[invoice.customer].created)
        day = max(first, invoice.day - 1 - int(realm.random() * 21))
        estimate = _Txn(ESTIMATE, invoice.customer, day, seq, invoice.lines, invoice.total, links=[invoice])
        invoice.links.append(estimate)
    estimate.status = status
    if status in ("Accepted", "Closed"):
        latest = invoice.day if invoice is not None else realm.today
        estimate.updated = min(latest, estimate.day + int(realm.random() * 10))
    else:
        estimate.updated = estimate.day
    return estimate


def _unconverted_invoice(realm: _Realm, invoices: list[_Txn]) -> _Txn | None:
    """A random invoice not yet converted from an estimate (a few tries; None if unlucky or none)."""
    for _ in range(3) if invoices else ():
        invoice = invoices[int(realm.random() * len(invoices))]
        if not any(link.kind == ESTIMATE for link in invoice.links):
            return invoice
    return None


def _settle_balances(realm: _Realm) -> None:
    """Customer Balance from open invoices, unapplied payments and credits; BalanceWithJobs rolled up; a few
    settled customers without jobs made inactive."""
    for txn in realm.txns:
        if txn.kind == INVOICE:
            realm.customers[txn.customer].balance += txn.balance
        elif txn.kind in (PAYMENT, CREDIT_MEMO):
            realm.customers[txn.customer].balance -= txn.balance
    for index in range(len(realm.customers) - 1, -1, -1):
        customer = realm.customers[index]
        customer.with_jobs += customer.balance
        if customer.parent is not None:
            realm.customers[customer.parent].with_jobs += customer.with_jobs
        if index > 5 and not customer.has_jobs and customer.with_jobs == 0 and realm.random() < 0.03:
            customer.active = False


def _txn_object(realm: _Realm, txn: _Txn) -> dict:
    """The QBO JSON of a planned transaction."""
    customer = realm.customers[txn.customer]
    fields: dict = {"TxnDate": realm.calendar.iso(txn.day),
                    "CustomerRef": _ref(customer.id, customer.display),
                    "CurrencyRef": _currency_ref(customer.currency)}
    rate = None
    if customer.currency != realm.home:
        rate = fields["ExchangeRate"] = realm.rate(customer.currency, txn.day)
    _BUILDERS[txn.kind](realm, txn, customer, fields)
    if rate is not None:
        fields["HomeTotalAmt"] = (txn.total * rate).quantize(CENT, ROUND_HALF_UP)
        if txn.kind == INVOICE:
            fields["HomeBalance"] = (txn.balance * rate).quantize(CENT, ROUND_HALF_UP)
    return _envelope(txn.id, realm.calendar.meta(txn.day, txn.updated, int(txn.id)), fields)


def _sales_lines(realm: _Realm, txn: _Txn, currency: str) -> list[dict]:
    """Item lines (Qty x UnitPrice = Amount) followed by the subtotal line, as QBO returns them."""
    prices = realm.prices[currency]
    lines = []
    for number, (item, qty) in enumerate(txn.lines, 1):
        unit, amounts = prices[item]
        name, description, _ = ITEMS[item]
        lines.append({"Id": str(number), "LineNum": number, "Description": description,
                      "Amount": amounts[qty], "DetailType": "SalesItemLineDetail",
                      "SalesItemLineDetail": {"ItemRef": _ref(str(item + 1), name), "UnitPrice": unit,
                                              "Qty": QUANTITIES[qty], "TaxCodeRef": _ref("NON")}})
    lines.append({"Amount": txn.total, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
    return lines


def _sale_fields(realm: _Realm, txn: _Txn, customer: _Customer, fields: dict) -> None:
    """Fields every sales form (invoice, estimate, sales receipt, credit memo) has."""
    recent = txn.day > realm.today - 2
    emailed = customer.delivery == "Email"
    fields.update({
        "DocNumber": txn.doc, "Line": _sales_lines(realm, txn, customer.currency), "TotalAmt": txn.total,
        "TxnTaxDetail": {"TotalTax": ZERO}, "ApplyTaxAfterDiscount": False,
        "PrintStatus": "NotSet" if emailed else ("NeedToPrint" if recent else "PrintComplete"),
        "EmailStatus": ("NeedToSend" if recent else "EmailSent") if emailed else "NotSet",
        "CustomerMemo": {"value": THANKS},
    })
    if customer.email:
        fields["BillEmail"] = {"Address": customer.email}


def _invoice_fields(realm: _Realm, txn: _Txn, customer: _Customer, fields: dict) -> None:
    _sale_fields(realm, txn, customer, fields)
    fields.update({
        "DueDate": realm.calendar.iso(txn.day + TERMS[customer.term][1]),
        "SalesTermRef": _ref(str(customer.term + 1)), "Balance": txn.balance, "Deposit": ZERO,
        "BillAddr": _block_address(realm, customer), "ShipAddr": _address_fields(realm, customer.ship),
        "LinkedTxn": _linked(txn.links),
        "CustomField": [{"DefinitionId": "1", "StringValue": str(100 + int(txn.id) % 7), "Type": "StringType",
                         "Name": "Crew #"}],
    })


def _estimate_fields(realm: _Realm, txn: _Txn, customer: _Customer, fields: dict) -> None:
    _sale_fields(realm, txn, customer, fields)
    fields.update({
        "TxnStatus": txn.status, "ExpirationDate": realm.calendar.iso(txn.day + 30),
        "BillAddr": _address_fields(realm, customer.bill), "ShipAddr": _address_fields(realm, customer.ship),
        "LinkedTxn": _linked(txn.links),
        "CustomField": [{"DefinitionId": "1", "Type": "StringType", "Name": "Crew #"}],
    })
    if txn.status in ("Accepted", "Closed"):
        fields["AcceptedDate"] = realm.calendar.iso(txn.updated)
        fields["AcceptedBy"] = f"{customer.given} {customer.family}".strip()[:100]


def _receipt_fields(realm: _Realm, txn: _Txn, customer: _Customer, fields: dict) -> None:
    _sale_fields(realm, txn, customer, fields)
    method = customer.method
    fields.update({
        "PaymentMethodRef": _ref(str(method + 1), PAYMENT_METHODS[method][0]),
        "PaymentRefNum": str(10000 + int(txn.id) % 90000),
        "DepositToAccountRef": _ref(ACCOUNTS["Checking"], "Checking"), "Balance": ZERO,
        "PrivateNote": PRIVATE_NOTES[int(txn.id) % len(PRIVATE_NOTES)],
        "BillAddr": _block_address(realm, customer),
        "CustomField": [{"DefinitionId": "1", "Type": "StringType", "Name": "Crew #"}],
    })


def _credit_memo_fields(realm: _Realm, txn: _Txn, customer: _Customer, fields: dict) -> None:
    _sale_fields(realm, txn, customer, fields)
    fields["CustomerMemo"] = {"value": "Credit for services not delivered."}
    fields.update({
        "RemainingCredit": txn.balance, "Balance": txn.balance, "PrivateNote": "Goodwill credit.",
        "BillAddr": _block_address(realm, customer), "ShipAddr": _address_fields(realm, customer.ship),
    })


def _payment_fields(realm: _Realm, txn: _Txn, customer: _Customer, fields: dict) -> None:
    method = customer.method
    fields.update({
        "TotalAmt": txn.total, "UnappliedAmt": txn.balance, "ProcessPayment": False,
        "DepositToAccountRef": _ref(ACCOUNTS["Undeposited Funds"]),
        "PaymentMethodRef": _ref(str(method + 1), PAYMENT_METHODS[method][0]),
        "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice.id, "TxnType": "Invoice"}]}
                 for invoice, amount in sorted(txn.links, key=lambda link: int(link[0].id))],
    })
    if method == CHECK:
        fields["PaymentRefNum"] = str(1000 + int(txn.id) % 9000)


def _linked(links: list[_Txn]) -> list[dict]:
    ordered = sorted(links, key=lambda txn: int(txn.id))
    return [{"TxnId": link.id, "TxnType": KIND_NAMES[link.kind]} for link in ordered]


_BUILDERS = (_estimate_fields, _invoice_fields, _receipt_fields, _credit_memo_fields, _payment_fields)


# --- the generator ------------------------------------------------------------------------------------------


def generate_realm(customers: int, transactions: int, multicurrency: bool, seed: int,
                   home_currency: str = "USD", today: date | None = None) -> Iterator[tuple[str, dict]]:
    """Yield (entity name, complete QBO object) for a whole realm in dependency order; same arguments, same
    output. Arguments are checked at once (ValueError), the objects are produced lazily."""
    if isinstance(customers, bool) or not isinstance(customers, int) or customers < 0:
        raise ValueError(f"customers must be a non-negative integer, got {customers!r}")
    if isinstance(transactions, bool) or not isinstance(transactions, int) or transactions < 0:
        raise ValueError(f"transactions must be a non-negative integer, got {transactions!r}")
    if transactions and not customers:
        raise ValueError("transactions need at least one customer")
    if home_currency not in LOCALES:
        raise ValueError(f"home_currency must be one of {tuple(LOCALES)}, got {home_currency!r}")
    realm = _Realm(seed, home_currency, multicurrency, today or date.today())
    return _generate(realm, customers, transactions)


def _generate(realm: _Realm, customers: int, transactions: int) -> Iterator[tuple[str, dict]]:
    yield "Preferences", _preferences(realm)
    yield "CompanyInfo", _company_info(realm)
    yield from _terms(realm)
    yield from _payment_methods(realm)
    yield from _items(realm)
    yield from _vendors_and_employees(realm)
    _plan_customers(realm, customers)
    _plan_transactions(realm, transactions)
    _settle_balances(realm)
    for customer in realm.customers:
        yield "Customer", _customer_object(realm, customer)
    for txn in realm.txns:
        yield KIND_NAMES[txn.kind], _txn_object(realm, txn)
