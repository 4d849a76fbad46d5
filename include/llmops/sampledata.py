"""A seeded generator of a realistic, multi-source customer-support corpus (no downloads).

``generate(out_dir)`` writes, per day ``D``::

    landing/dt=D/email_tickets.jsonl    JSON lines (some malformed on purpose)
    landing/dt=D/chat_logs.csv          CSV with quoting, commas and newlines in texts
    landing/dt=D/forum_posts.parquet
    landing/dt=D/call_notes.txt         one note per line, no ids
    api/dt=D/page-N.json                pages of a paginated JSON API ({"items": [...], "next": ...})

plus ``hf/product_reviews`` (a ``datasets`` dataset saved to disk), ``sample_manifest.json`` and
``ground_truth/labels.jsonl`` – the intent label, language, planted PII types and duplicate
links per record. Curation never reads the ground truth; the simulated crowd and the golden
sets do. The corpus has English and Spanish messages for six intents, planted PII (e-mail,
phone, card numbers passing Luhn, SSNs, IBANs with valid check digits, IPs, URLs, names,
cities), exact and near duplicates, low-quality and wrong-language texts, and malformed
records. The same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["INTENTS", "generate", "iter_short_docs", "luhn_ok", "iban_ok", "write_jsonl"]

INTENTS = ("billing", "shipping", "technical_issue", "account_access", "refund", "product_question")

PRODUCTS = {
    "en": ["wireless headphones", "coffee maker", "running shoes", "phone case", "desk lamp", "backpack",
           "smart watch", "blender", "yoga mat", "winter jacket", "bluetooth speaker", "air fryer"],
    "es": ["auriculares inalámbricos", "cafetera", "zapatillas de correr", "funda de móvil", "lámpara de escritorio",
           "mochila", "reloj inteligente", "batidora", "esterilla de yoga", "chaqueta de invierno", "altavoz",
           "freidora de aire"],
}

TEMPLATES: dict[str, dict[str, list[str]]] = {
    "en": {
        "billing": [
            "I was charged twice for order {order} and I need the duplicate payment removed from my statement.",
            "Why does my invoice for the {product} show a higher amount than the price on your website?",
            "My card was billed {amount} but I cancelled the subscription last month, please explain the charge.",
            "Can you send me a corrected invoice for order {order}? The billing address on it is wrong.",
            "There is an unknown charge of {amount} on my account from your store, what is it for?",
            "I paid for express shipping on order {order} but the invoice lists standard delivery instead.",
            "The discount code was not applied at checkout and I was billed the full {amount} for the {product}.",
            "Please stop charging my card every month, I never signed up for a recurring plan.",
        ],
        "shipping": [
            "My order {order} was supposed to arrive {day} but the tracking page has not moved in a week.",
            "The courier says the {product} was delivered but nothing was left at my door, where is my parcel?",
            "Can I change the delivery address for order {order}? I am moving next week.",
            "How long does international shipping take for the {product}? I need it before the end of the month.",
            "The tracking number for order {order} does not work on the carrier website at all.",
            "My package arrived with a crushed box and the {product} inside is scratched.",
            "Only half of order {order} arrived, the {product} is missing from the box.",
            "Is it possible to pick up order {order} at a store instead of waiting for the courier?",
        ],
        "technical_issue": [
            "The {product} stopped turning on after two days, I already tried charging it overnight.",
            "Your app crashes every time I open the order history page on my phone.",
            "The {product} keeps disconnecting from bluetooth every few minutes, is there a firmware update?",
            "I get an error message when I try to pay with my card on the checkout page.",
            "The website shows a blank page when I click on my account settings, tried two browsers already.",
            "After the last update the {product} makes a loud noise and the display flickers.",
            "The pairing code for the {product} is not accepted, the manual does not explain what to do.",
            "Your checkout page freezes after I enter the delivery address and nothing happens.",
        ],
        "account_access": [
            "I cannot log in to my account, the password reset email never arrives.",
            "My account was locked after too many attempts, how do I unlock it?",
            "Someone changed the email on my account without my permission, please help me recover it.",
            "The two factor code is not being sent to my phone anymore so I am stuck at the login screen.",
            "I want to delete my account and all the personal data you keep about me.",
            "I forgot which email I used to register, can you find my account with my order {order}?",
            "The login page says my username does not exist but I ordered the {product} last week.",
            "Please merge my two accounts, I accidentally registered twice with different emails.",
        ],
        "refund": [
            "I returned the {product} two weeks ago and I still have not received my refund.",
            "Please refund order {order}, the item arrived broken and I do not want a replacement.",
            "How long does it take for a refund to appear on my card after you receive the return?",
            "You refunded only part of order {order}, the shipping costs of {amount} are missing.",
            "I would like to return the {product} because it does not fit, how do I get my money back?",
            "The return label for order {order} does not print, I need another one to send the item back.",
            "My refund was sent to an old card that is closed now, can you send it another way?",
            "I cancelled order {order} before it shipped, when will I get the {amount} back?",
        ],
        "product_question": [
            "Is the {product} waterproof? I want to use it outside when it rains.",
            "Does the {product} come with a charger or do I need to buy one separately?",
            "What is the difference between the two sizes of the {product} on your website?",
            "Will the {product} be back in stock soon? I have been waiting for a month.",
            "Can the {product} be used with a european power plug or only a US one?",
            "How many years of warranty do you offer on the {product}?",
            "Is the {product} suitable for children under ten years old?",
            "Which colours are available for the {product} and are they all the same price?",
        ],
    },
    "es": {
        "billing": [
            "Me han cobrado dos veces el pedido {order} y necesito que devuelvan el pago duplicado.",
            "La factura de la {product} muestra un importe mayor que el precio de la web, por qué?",
            "Me cobraron {amount} en la tarjeta pero cancelé la suscripción el mes pasado.",
            "Pueden enviarme una factura corregida del pedido {order}? La dirección de facturación está mal.",
            "Hay un cargo desconocido de {amount} en mi cuenta de su tienda, a qué corresponde?",
            "Pagué el envío urgente del pedido {order} pero la factura indica envío normal.",
            "El código de descuento no se aplicó y me cobraron los {amount} completos por la {product}.",
            "Dejen de cobrar mi tarjeta cada mes, nunca contraté un plan recurrente.",
        ],
        "shipping": [
            "Mi pedido {order} debía llegar {day} pero el seguimiento no se mueve desde hace una semana.",
            "El repartidor dice que entregó la {product} pero no había nada en mi puerta, dónde está el paquete?",
            "Puedo cambiar la dirección de entrega del pedido {order}? Me mudo la semana que viene.",
            "Cuánto tarda el envío internacional de la {product}? La necesito antes de fin de mes.",
            "El número de seguimiento del pedido {order} no funciona en la web del transportista.",
            "El paquete llegó con la caja aplastada y la {product} está rayada.",
            "Solo llegó la mitad del pedido {order}, falta la {product} en la caja.",
            "Es posible recoger el pedido {order} en una tienda en lugar de esperar al repartidor?",
        ],
        "technical_issue": [
            "La {product} dejó de encenderse a los dos días, ya probé a cargarla toda la noche.",
            "Su aplicación se cierra cada vez que abro el historial de pedidos en el móvil.",
            "La {product} se desconecta del bluetooth cada pocos minutos, hay alguna actualización?",
            "Me sale un mensaje de error cuando intento pagar con tarjeta en la página de pago.",
            "La web muestra una página en blanco al entrar en la configuración de mi cuenta.",
            "Después de la última actualización la {product} hace un ruido fuerte y la pantalla parpadea.",
            "El código de emparejamiento de la {product} no funciona y el manual no explica qué hacer.",
            "La página de pago se queda congelada después de escribir la dirección de entrega.",
        ],
        "account_access": [
            "No puedo entrar en mi cuenta, el correo para restablecer la contraseña nunca llega.",
            "Mi cuenta se bloqueó después de varios intentos, cómo la desbloqueo?",
            "Alguien cambió el correo de mi cuenta sin permiso, ayúdenme a recuperarla por favor.",
            "El código de verificación ya no llega a mi teléfono y no puedo iniciar sesión.",
            "Quiero eliminar mi cuenta y todos los datos personales que tienen sobre mí.",
            "No recuerdo con qué correo me registré, pueden encontrar mi cuenta con el pedido {order}?",
            "La página de inicio dice que mi usuario no existe pero compré la {product} la semana pasada.",
            "Por favor unan mis dos cuentas, me registré dos veces con correos distintos.",
        ],
        "refund": [
            "Devolví la {product} hace dos semanas y todavía no he recibido el reembolso.",
            "Por favor reembolsen el pedido {order}, el artículo llegó roto y no quiero un cambio.",
            "Cuánto tarda en aparecer el reembolso en mi tarjeta después de recibir la devolución?",
            "Solo reembolsaron parte del pedido {order}, faltan los gastos de envío de {amount}.",
            "Quiero devolver la {product} porque no me queda bien, cómo recupero mi dinero?",
            "La etiqueta de devolución del pedido {order} no se imprime, necesito otra para enviarlo.",
            "Mi reembolso se envió a una tarjeta antigua que ya está cerrada, pueden enviarlo de otra forma?",
            "Cancelé el pedido {order} antes del envío, cuándo me devuelven los {amount}?",
        ],
        "product_question": [
            "La {product} es resistente al agua? Quiero usarla fuera cuando llueve.",
            "La {product} viene con cargador o tengo que comprarlo aparte?",
            "Cuál es la diferencia entre las dos tallas de la {product} que aparecen en la web?",
            "Volverá a haber existencias de la {product} pronto? Llevo un mes esperando.",
            "Se puede usar la {product} con un enchufe europeo o solo con uno americano?",
            "Cuántos años de garantía tiene la {product}?",
            "La {product} es adecuada para niños menores de diez años?",
            "Qué colores hay de la {product} y tienen todos el mismo precio?",
        ],
    },
}

OPENERS = {"en": ["Hi,", "Hello,", "Good morning,", "Hi there,", "Dear support,", ""],
           "es": ["Hola,", "Buenos días,", "Buenas tardes,", "Estimado soporte,", ""]}
CLOSERS = {"en": ["Thanks.", "Thank you in advance.", "Regards.", "Please help.", "Thanks for your help.", ""],
           "es": ["Gracias.", "Muchas gracias.", "Saludos.", "Espero su respuesta.", ""]}
DAYS = {"en": ["on Monday", "yesterday", "last Friday", "three days ago", "before the weekend"],
        "es": ["el lunes", "ayer", "el viernes pasado", "hace tres días", "antes del fin de semana"]}

FIRST = ["John", "Mary", "James", "Linda", "Robert", "Patricia", "Michael", "Jennifer", "David", "Susan",
         "Maria", "Jose", "Carmen", "Antonio", "Lucia", "Javier", "Elena", "Carlos", "Sofia", "Miguel"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor", "Clark",
        "Garcia", "Martinez", "Lopez", "Sanchez", "Perez", "Gomez", "Fernandez", "Ruiz", "Diaz", "Moreno"]
CITIES = {"en": ["Chicago", "Boston", "Seattle", "Denver", "Atlanta", "Houston", "Phoenix", "Dallas"],
          "es": ["Madrid", "Barcelona", "Sevilla", "Valencia", "Bilbao", "Zaragoza", "Málaga", "Granada"]}
AREA = ["212", "312", "415", "617", "206", "303", "404", "713", "602", "214"]
FOREIGN = [
    "Bonjour, ma commande n'est toujours pas arrivée et je voudrais savoir quand elle sera livrée.",
    "Guten Tag, meine Bestellung ist beschädigt angekommen und ich möchte das Geld zurück.",
    "Bonjour, je n'arrive plus à me connecter à mon compte depuis hier soir, pouvez-vous m'aider ?",
    "Hallo, die Rechnung für meine letzte Bestellung ist falsch, bitte schicken Sie eine neue.",
]

PII_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS", "URL",
             "PERSON", "LOCATION")


# --------------------------------------------------------------------------- checksums
def _luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return len(digits) >= 12 and total % 10 == 0


def _iban(rng: random.Random, country: str) -> str:
    bban = "".join(str(rng.randint(0, 9)) for _ in range(18 if country == "DE" else 20))
    rearranged = bban + "".join(str(ord(c) - 55) for c in country) + "00"
    check = 98 - int(rearranged) % 97
    return f"{country}{check:02d}{bban}"


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "")
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


# --------------------------------------------------------------------------- PII snippets
def _pii_snippet(rng: random.Random, kind: str, lang: str) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    en = lang == "en"
    if kind == "EMAIL_ADDRESS":
        dom = rng.choice(["example.com", "example.org", "mail.example.net"])
        return (f"You can reach me at {first.lower()}.{last.lower()}{rng.randint(1, 99)}@{dom}." if en
                else f"Mi correo es {first.lower()}.{last.lower()}{rng.randint(1, 99)}@{dom}.")
    if kind == "PHONE_NUMBER":
        num = f"({rng.choice(AREA)}) {rng.randint(201, 989)}-{rng.randint(1000, 9999)}"
        if rng.random() < 0.4:
            num = f"+1 {rng.choice(AREA)}-{rng.randint(201, 989)}-{rng.randint(1000, 9999)}"
        return f"Call me back on {num}." if en else f"Mi teléfono es {num}."
    if kind == "CREDIT_CARD":
        body = "4" + "".join(str(rng.randint(0, 9)) for _ in range(14))
        card = body + _luhn_digit(body)
        card = " ".join(card[i : i + 4] for i in range(0, 16, 4))
        return f"The card used was {card}." if en else f"La tarjeta usada fue {card}."
    if kind == "US_SSN":
        ssn = f"{rng.randint(101, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
        return f"My SSN is {ssn} if you need to verify me." if en else f"Mi SSN es {ssn}."
    if kind == "IBAN_CODE":
        iban = _iban(rng, "DE" if en else "ES")
        return f"Please refund to IBAN {iban}." if en else f"Devuelvan el dinero al IBAN {iban}."
    if kind == "IP_ADDRESS":
        ip = f"{rng.choice([81, 88, 92, 151, 203])}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        return f"The error happened from IP {ip}." if en else f"El error ocurrió desde la IP {ip}."
    if kind == "URL":
        url = f"https://shop.example.com/orders/{rng.randint(10000, 99999)}"
        return f"See {url} for details." if en else f"Más detalles en {url}."
    if kind == "PERSON":
        return f"My name is {first} {last}." if en else f"Me llamo {first} {last}."
    if kind == "LOCATION":
        city = rng.choice(CITIES[lang])
        return f"I live in {city}." if en else f"Vivo en {city}."
    raise ValueError(kind)


def _message(rng: random.Random, lang: str, intent: str, pii: list[str]) -> str:
    tpl = rng.choice(TEMPLATES[lang][intent])
    body = tpl.format(order=f"ORD-{rng.randint(100000, 999999)}", product=rng.choice(PRODUCTS[lang]),
                      amount=f"{rng.randint(5, 300)}.{rng.randint(0, 99):02d} {'USD' if lang == 'en' else 'EUR'}",
                      day=rng.choice(DAYS[lang]))
    parts = [rng.choice(OPENERS[lang]), body]
    if rng.random() < 0.5:  # a second sentence makes texts longer and more varied
        parts.append(rng.choice([t for t in TEMPLATES[lang][intent] if t != tpl]).format(
            order=f"ORD-{rng.randint(100000, 999999)}", product=rng.choice(PRODUCTS[lang]),
            amount=f"{rng.randint(5, 300)} {'USD' if lang == 'en' else 'EUR'}", day=rng.choice(DAYS[lang])))
    parts.extend(_pii_snippet(rng, k, lang) for k in pii)
    parts.append(rng.choice(CLOSERS[lang]))
    return " ".join(p for p in parts if p)


def _near_dup(rng: random.Random, text: str) -> str:
    """1-3 word substitutions/insertions/deletions, far enough apart to stay similar."""
    words = text.split(" ")
    fillers = ["really", "please", "now", "again", "today", "still", "also", "realmente", "ahora"]
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(words))
        op = rng.random()
        if op < 0.4:
            words[pos] = rng.choice(fillers)
        elif op < 0.8:
            words.insert(pos, rng.choice(fillers))
        elif len(words) > 8:
            del words[pos]
    return " ".join(words)


# --------------------------------------------------------------------------- generation
class _Day:
    """Builds one day's records: valid ones with labels, plus planted problems."""

    def __init__(self, rng: random.Random, day: str, n: int, history: list[dict[str, Any]]) -> None:
        self.rng = rng
        self.day = day
        self.n = n
        self.history = history  # earlier valid records (for cross-day duplicates)
        self.start = datetime.fromisoformat(day).replace(tzinfo=UTC)

    def ts(self) -> str:
        return (self.start + timedelta(seconds=self.rng.randint(0, 86_399))).isoformat().replace("+00:00", "Z")

    def valid(self) -> dict[str, Any]:
        rng = self.rng
        lang = "en" if rng.random() < 0.75 else "es"
        intent = rng.choice(INTENTS)
        pii = sorted(rng.sample(PII_TYPES, rng.randint(1, 2))) if rng.random() < 0.3 else []
        return {"text": _message(rng, lang, intent, pii), "label": intent, "lang": lang, "pii_types": pii,
                "dup_of": None, "near_dup_of": None}

    def records(self) -> list[dict[str, Any]]:
        rng = self.rng
        out: list[dict[str, Any]] = []
        for _ in range(self.n):
            roll = rng.random()
            earlier = [r for r in out[-300:] + self.history[-300:] if r["kind"] == "valid"]
            if roll < 0.05 and earlier:
                src = rng.choice(earlier)
                src["_used"] = True
                text = src["text"]
                variant = rng.random()
                if variant < 0.3:
                    text = f"  {text}  "
                elif variant < 0.5:
                    text = text.lower()
                rec = dict(src, text=text, kind="dup", _src=src)
            elif roll < 0.10 and earlier:
                src = rng.choice(earlier)
                src["_used"] = True
                rec = dict(src, text=_near_dup(rng, src["text"]), kind="near", _src=src)
            elif roll < 0.13:
                rec = {"kind": "lowq", "text": rng.choice([
                    "ok", "?", "$$$ ### !!! @@@ %%% ^^^ &&&", "help\n" * 12,
                    "Hello\x00 my\x07 order is late, where is it? I have been waiting for days\x00.",
                    rng.choice(FOREIGN)]), "label": None, "lang": None, "pii_types": []}
            else:
                rec = dict(self.valid(), kind="valid")
            rec["created_at"] = self.ts()
            out.append(rec)
        return out


def _assign(records: list[dict[str, Any]], rng: random.Random) -> dict[str, list[dict[str, Any]]]:
    shares = (("email", 0.40), ("chat", 0.25), ("forum", 0.20), ("notes", 0.15))
    groups: dict[str, list[dict[str, Any]]] = {k: [] for k, _ in shares}
    for rec in records:
        x = rng.random()
        acc = 0.0
        for name, share in shares:
            acc += share
            if x < acc:
                groups[name].append(rec)
                break
        else:
            groups["notes"].append(rec)
    return groups


_ID_PREFIX = {"email": "email", "chat": "chat", "forum": "forum", "notes": "notes", "api": "api"}


def _ids(groups: dict[str, list[dict[str, Any]]], day: str) -> None:
    for name, recs in groups.items():
        for i, rec in enumerate(recs, start=1):
            rec["id"] = f"{_ID_PREFIX[name]}-{day}-{i:06d}"
            rec["channel"] = name


def _malformed_email_lines(day: str) -> list[bytes]:
    """One of each way a JSON line can be unusable."""
    base = f"email-{day}-bad"
    lines = [
        b'{"id": "' + f"{base}1".encode() + b'", "text": "My order never arrived and',
        json.dumps({"id": f"{base}2", "text": None, "created_at": f"{day}T09:00:00Z"}).encode(),
        json.dumps({"id": f"{base}3", "text": 12345, "created_at": f"{day}T09:01:00Z"}).encode(),
        json.dumps({"id": f"{base}4", "created_at": f"{day}T09:02:00Z"}).encode(),
        b'{"id": "' + f"{base}5".encode() + b'", "text": "Refund for order \xff\xfe please, it broke"}',
        json.dumps(["not", "an", "object"]).encode(),
        json.dumps({"id": f"{base}7", "text": "spam " * 13000}).encode(),
    ]
    return lines


def generate(out_dir: str | Path, *, seed: int = 0, records_per_day: int = 200,
             days: Iterable[str] = ("2026-11-25", "2026-11-26", "2026-11-27")) -> dict[str, Any]:
    """Write the sample corpus under ``out_dir``; return (and write) a summary."""
    out = Path(out_dir)
    rng = random.Random(seed)
    days = list(days)
    history: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    files: dict[str, int] = {}
    for day in days:
        recs = _Day(rng, day, records_per_day, history).records()
        groups = _assign(recs, rng)
        api_recs = [dict(_Day(rng, day, 1, []).valid(), kind="valid", created_at=_Day(rng, day, 1, []).ts())
                    for _ in range(max(3, records_per_day // 7))]
        groups["api"] = api_recs
        _ids(groups, day)
        land = out / "landing" / f"dt={day}"
        land.mkdir(parents=True, exist_ok=True)
        # email: JSON lines + malformed lines
        lines = [json.dumps({"id": r["id"], "text": r["text"], "created_at": r["created_at"],
                             "customer_tier": rng.choice(["gold", "silver", "bronze"]), "channel": "email"},
                            ensure_ascii=False).encode() for r in groups["email"]]
        bad = _malformed_email_lines(day)
        for b in bad:
            lines.insert(rng.randint(0, len(lines)), b)
        (land / "email_tickets.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        counts["malformed"] += len(bad)
        files[f"landing/dt={day}/email_tickets.jsonl"] = len(lines)
        # chat: CSV (an empty text row on purpose)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["id", "text", "created_at", "agent", "channel"])
        for r in groups["chat"]:
            text = r["text"]
            if rng.random() < 0.1 and r["kind"] == "valid" and not r.get("_used"):
                # chat transcripts with quotes and line breaks (never a duplicate's source, whose
                # copies must stay identical)
                text = f'Customer: "{text}"\nAgent: looking into it, one moment.'
                r["text"] = text
            writer.writerow([r["id"], text, r["created_at"], rng.choice(["ana", "ben", "chloe", "dev"]), "chat"])
        writer.writerow([f"chat-{day}-empty", "", f"{day}T12:00:00Z", "ana", "chat"])
        counts["malformed"] += 1
        (land / "chat_logs.csv").write_text(buf.getvalue(), encoding="utf-8")
        files[f"landing/dt={day}/chat_logs.csv"] = len(groups["chat"]) + 1
        # forum: Parquet (one null text)
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [{"id": r["id"], "text": r["text"], "created_at": r["created_at"],
                 "thread": f"t{rng.randint(1, 40)}", "channel": "forum"} for r in groups["forum"]]
        rows.append({"id": f"forum-{day}-null", "text": None, "created_at": f"{day}T13:00:00Z",
                     "thread": "t0", "channel": "forum"})
        counts["malformed"] += 1
        pq.write_table(pa.Table.from_pylist(rows), land / "forum_posts.parquet")
        files[f"landing/dt={day}/forum_posts.parquet"] = len(rows)
        # call notes: one per line, no ids, newlines flattened
        notes = groups["notes"]
        note_lines = []
        for i, r in enumerate(notes, start=1):
            r["text"] = r["text"].replace("\n", " ")
            r["txt_line"] = {"file": f"landing/dt={day}/call_notes.txt", "line": i}
            note_lines.append(r["text"])
        (land / "call_notes.txt").write_text("\n".join(note_lines) + "\n", encoding="utf-8")
        files[f"landing/dt={day}/call_notes.txt"] = len(note_lines)
        # API pages (different field names: body / posted_at / lang_hint)
        api_dir = out / "api" / f"dt={day}"
        api_dir.mkdir(parents=True, exist_ok=True)
        pages = [api_recs[i : i + 10] for i in range(0, len(api_recs), 10)]
        for p, page in enumerate(pages, start=1):
            body = {"items": [{"id": r["id"], "body": r["text"], "posted_at": r["created_at"], "lang_hint": r["lang"]}
                              for r in page],
                    "next": f"page-{p + 1}.json" if p < len(pages) else None}
            (api_dir / f"page-{p}.json").write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
        files[f"api/dt={day}"] = len(api_recs)
        for recs_ in groups.values():  # ids exist now: link duplicates to their source record
            for r in recs_:
                src = r.pop("_src", None)
                r["dup_of"] = src["id"] if src is not None and r["kind"] == "dup" else None
                r["near_dup_of"] = src["id"] if src is not None and r["kind"] == "near" else None
        for name, recs_ in groups.items():
            for r in recs_:
                counts[r["kind"]] += 1
                if r["pii_types"] and r["kind"] in ("valid", "dup", "near"):
                    counts["pii_records"] += 1
                entry = {"id": r["id"], "day": day, "channel": name, "kind": r["kind"], "label": r["label"],
                         "lang": r["lang"], "pii_types": r["pii_types"], "dup_of": r["dup_of"],
                         "near_dup_of": r["near_dup_of"]}
                if "txt_line" in r:
                    entry["txt_line"] = r["txt_line"]
                truth.append(entry)
                if r["kind"] == "valid":
                    history.append(r)
    # a saved `datasets` dataset of product reviews
    reviews = []
    for i in range(100):
        lang = "en"
        intent = "product_question"
        pii = ["EMAIL_ADDRESS"] if rng.random() < 0.2 else []
        text = f"Review: {rng.choice(['Great', 'Good', 'Disappointing', 'Okay'])} {rng.choice(PRODUCTS[lang])}. " + \
            _message(rng, lang, intent, pii)
        reviews.append({"id": f"review-{i:05d}", "text": text, "created_at": days[0] + "T08:00:00Z",
                        "rating": rng.randint(1, 5)})
    import datasets

    datasets.disable_progress_bars()
    datasets.Dataset.from_list(reviews).save_to_disk(str(out / "hf" / "product_reviews"))
    gt = out / "ground_truth"
    gt.mkdir(parents=True, exist_ok=True)
    write_jsonl(gt / "labels.jsonl", truth)
    summary = {
        "seed": seed,
        "days": days,
        "records_per_day": records_per_day,
        "files": files,
        "planted": {"valid": counts["valid"], "exact_duplicates": counts["dup"], "near_duplicates": counts["near"],
                    "low_quality_or_foreign": counts["lowq"], "malformed": counts["malformed"],
                    "pii_records": counts["pii_records"]},
        "hf_dataset": "hf/product_reviews",
        "ground_truth": "ground_truth/labels.jsonl",
    }
    (out / "sample_manifest.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def write_jsonl(path: str | Path, docs: Iterable[dict[str, Any]]) -> int:
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    return n


def iter_short_docs(n: int, *, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` short raw documents quickly (benchmarks): ~10% with PII, ~5% exact, ~3% near dups."""
    rng = random.Random(seed)
    recent: list[str] = []
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(n):
        roll = rng.random()
        if roll < 0.05 and recent:
            text = rng.choice(recent)
        elif roll < 0.08 and recent:
            text = _near_dup(rng, rng.choice(recent))
        else:
            lang = "en" if rng.random() < 0.75 else "es"
            pii = [rng.choice(PII_TYPES)] if rng.random() < 0.1 else []
            text = _message(rng, lang, rng.choice(INTENTS), pii)
            if len(recent) < 512:
                recent.append(text)
            else:
                recent[rng.randrange(512)] = text
        yield {"id": f"doc-{i:08d}", "text": text,
               "created_at": (base + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")}
