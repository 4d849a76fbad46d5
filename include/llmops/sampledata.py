"""A seeded generator of a realistic, multi-source customer-support corpus (no downloads).

``generate(out_dir)`` writes, per day ``D``::

    landing/dt=D/email_tickets.jsonl    JSON lines (id, text, created_at, customer_tier, channel),
                                        some malformed on purpose
    landing/dt=D/chat_logs.csv          id,text,created_at,agent,channel – quoted commas, quotes and
                                        multi-line transcripts; one empty text
    landing/dt=D/forum_posts.parquet    id,text,created_at,thread,channel – one null text
    landing/dt=D/call_notes.txt         one note per line, plain text, no ids
    api/dt=D/page-N.json                a paginated JSON API: {"items": [{id, body, posted_at,
                                        lang_hint}], "next": "page-N+1.json" | null}

plus ``hf/product_reviews`` (a ``datasets`` dataset saved with ``save_to_disk``),
``ground_truth/labels.jsonl`` (intent label, language, planted PII types and duplicate links per
record: read by the simulated crowd and golden sets, never by curation) and
``sample_manifest.json`` (the summary ``generate`` returns).

The messages are English (~75%) and Spanish (~25%) support requests for six intents built from
templates and random fillers. Planted on purpose: PII in natural sentences (e-mails, US phone
numbers, card numbers passing Luhn, SSNs, IBANs with valid mod-97 check digits, IPv4 addresses,
URLs, person names, cities), exact duplicates (verbatim, or differing only in surrounding
whitespace, letter case or NFC/NFD accents), near duplicates (1-3 words edited, character
5-gram Jaccard >= 0.85 with their source), low-quality bait (too short, symbols, repeated lines,
control characters, French/German) and malformed records.

All randomness comes from ``random.Random`` seeded per (seed, day), so the same seed gives
byte-identical files, and appending a later day does not change the earlier days' files.
"""

from __future__ import annotations

import io
import json
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = [
    "CHANNEL_FILES",
    "FIRST",
    "INTENTS",
    "LANGS",
    "LAST",
    "PII_TYPES",
    "generate",
    "iban_ok",
    "iter_short_docs",
    "luhn_ok",
    "make_iban",
    "shingle_jaccard",
    "write_jsonl",
]

INTENTS = ("billing", "shipping", "technical_issue", "account_access", "refund", "product_question")
LANGS = ("en", "es")
# Presidio entity names, so the ground truth lines up with what the redactor reports.
PII_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS", "URL",
             "PERSON", "LOCATION")
# channel -> landing file name; the day's records are split across them ~40/25/20/15.
CHANNEL_FILES = {"email": "email_tickets.jsonl", "chat": "chat_logs.csv", "forum": "forum_posts.parquet",
                 "notes": "call_notes.txt"}
_CHANNEL_SHARES = (("email", 0.40), ("chat", 0.25), ("forum", 0.20), ("notes", 0.15))

# Planted-problem rates per day (of records_per_day).
_DUP_RATE, _NEAR_RATE, _BAIT_RATE, _MALFORMED_RATE, _PII_RATE = 0.05, 0.05, 0.04, 0.03, 0.30
_API_RATE = 0.15  # API items per day, ~30 for 200 records per day
_API_PAGE_SIZE = 10
_N_REVIEWS = 100
_NEAR_MIN_SIMILARITY = 0.85  # comfortably above the pipeline's 0.8 MinHash threshold
_OVERSIZED_CHARS = 60_000  # above both 40k and the pipeline's max_input_chars (50k)

# --------------------------------------------------------------------------- vocabulary
PRODUCTS = {
    "en": ["wireless headphones", "coffee maker", "running shoes", "phone case", "desk lamp", "backpack",
           "smart watch", "blender", "yoga mat", "winter jacket", "bluetooth speaker", "air fryer",
           "electric toothbrush", "gaming mouse", "kettle", "robot vacuum"],
    # feminine singular nouns only, so "la {product}" in the templates is always grammatical
    "es": ["cafetera", "batidora", "freidora de aire", "mochila", "lámpara de escritorio", "funda del móvil",
           "chaqueta de invierno", "esterilla de yoga", "tostadora", "báscula de baño", "aspiradora",
           "tableta", "plancha de vapor", "cámara deportiva", "sudadera", "maleta de cabina"],
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
            'My bank statement has said "pending authorization" for {amount} since last week, is that from you?',
            "I need a VAT invoice for order {order} with my company name on it, the current one is personal.",
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
            'Tracking for order {order} has said "out for delivery" for three days, nobody came.',
            "The delivery window for the {product} keeps moving, first it was Tuesday, then Friday, now next week.",
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
            'The app says "something went wrong, try again later" whenever I open order {order}.',
            "The {product} gets very hot after ten minutes of use, is that normal or is it faulty?",
        ],
        "account_access": [
            "I cannot log in to my account, the password reset email never arrives.",
            "My account was locked after too many attempts, how do I unlock it?",
            "Someone changed the email on my account without my permission, please help me recover it.",
            "The two factor code is not being sent to my phone anymore so I am stuck at the login screen.",
            "I want to delete my account and all the personal data you keep about me.",
            "I forgot which email I used to register, can you find my account with my order {order}?",
            "The login page says my username does not exist but I ordered the {product} {day}.",
            "Please merge my two accounts, I accidentally registered twice with different emails.",
            'Every time I sign in I get "session expired" and I am sent back to the home page.',
            "I changed my phone number and now I cannot receive the verification code, what can I do?",
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
            'Your email says "refund issued" for order {order} but my bank has not seen any money.',
            "The {product} was a gift and the person already has one, can I return it for store credit?",
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
            'The description of the {product} says "fast charging", how many minutes does a full charge take?',
            "Can I buy spare parts for the {product}, for example a new filter or a replacement cable?",
        ],
    },
    "es": {
        "billing": [
            "Me han cobrado dos veces el pedido {order} y necesito que devuelvan el pago duplicado.",
            "La factura de la {product} muestra un importe mayor que el precio de la web, ¿por qué?",
            "Me cobraron {amount} en la tarjeta pero cancelé la suscripción el mes pasado.",
            "¿Pueden enviarme una factura corregida del pedido {order}? La dirección de facturación está mal.",
            "Hay un cargo desconocido de {amount} en mi cuenta de su tienda, ¿a qué corresponde?",
            "Pagué el envío urgente del pedido {order} pero la factura indica envío normal.",
            "El código de descuento no se aplicó y me cobraron los {amount} completos por la {product}.",
            "Dejen de cobrar mi tarjeta cada mes, nunca contraté un plan recurrente.",
            'En mi banco aparece "pago pendiente" de {amount} desde {day}, ¿es de su tienda?',
            "Necesito una factura del pedido {order} a nombre de mi empresa, la actual está a mi nombre.",
        ],
        "shipping": [
            "Mi pedido {order} debía llegar {day} pero el seguimiento no se mueve desde hace una semana.",
            "El repartidor dice que entregó la {product} pero no había nada en mi puerta, ¿dónde está el paquete?",
            "¿Puedo cambiar la dirección de entrega del pedido {order}? Me mudo la semana que viene.",
            "¿Cuánto tarda el envío internacional de la {product}? La necesito antes de fin de mes.",
            "El número de seguimiento del pedido {order} no funciona en la web del transportista.",
            "El paquete llegó con la caja aplastada y la {product} está rayada.",
            "Solo llegó la mitad del pedido {order}, falta la {product} en la caja.",
            "¿Es posible recoger el pedido {order} en una tienda en lugar de esperar al repartidor?",
            'El seguimiento del pedido {order} dice "en reparto" desde {day} y nadie ha venido.',
            "La fecha de entrega de la {product} cambia cada día, primero era el martes, luego el viernes.",
        ],
        "technical_issue": [
            "La {product} dejó de encenderse a los dos días, ya probé a cargarla toda la noche.",
            "Su aplicación se cierra cada vez que abro el historial de pedidos en el móvil.",
            "La {product} se desconecta del bluetooth cada pocos minutos, ¿hay alguna actualización?",
            "Me sale un mensaje de error cuando intento pagar con tarjeta en la página de pago.",
            "La web muestra una página en blanco al entrar en la configuración de mi cuenta.",
            "Después de la última actualización la {product} hace un ruido fuerte y la pantalla parpadea.",
            "El código de emparejamiento de la {product} no funciona y el manual no explica qué hacer.",
            "La página de pago se queda congelada después de escribir la dirección de entrega.",
            'La aplicación dice "algo salió mal, inténtelo más tarde" cuando abro el pedido {order}.',
            "La {product} se calienta muchísimo a los diez minutos de uso, ¿es normal o está defectuosa?",
        ],
        "account_access": [
            "No puedo entrar en mi cuenta, el correo para restablecer la contraseña nunca llega.",
            "Mi cuenta se bloqueó después de varios intentos, ¿cómo la desbloqueo?",
            "Alguien cambió el correo de mi cuenta sin permiso, ayúdenme a recuperarla por favor.",
            "El código de verificación ya no llega a mi teléfono y no puedo iniciar sesión.",
            "Quiero eliminar mi cuenta y todos los datos personales que tienen sobre mí.",
            "No recuerdo con qué correo me registré, ¿pueden encontrar mi cuenta con el pedido {order}?",
            "La página de inicio dice que mi usuario no existe pero compré la {product} {day}.",
            "Por favor unan mis dos cuentas, me registré dos veces con correos distintos.",
            'Cada vez que inicio sesión aparece "sesión caducada" y vuelvo a la página principal.',
            "Cambié de número de teléfono y ahora no recibo el código de verificación, ¿qué hago?",
        ],
        "refund": [
            "Devolví la {product} hace dos semanas y todavía no he recibido el reembolso.",
            "Por favor reembolsen el pedido {order}, el artículo llegó roto y no quiero un cambio.",
            "¿Cuánto tarda en aparecer el reembolso en mi tarjeta después de recibir la devolución?",
            "Solo reembolsaron parte del pedido {order}, faltan los gastos de envío de {amount}.",
            "Quiero devolver la {product} porque no me convence, ¿cómo recupero mi dinero?",
            "La etiqueta de devolución del pedido {order} no se imprime, necesito otra para enviarlo.",
            "Mi reembolso se envió a una tarjeta antigua que ya está cerrada, ¿pueden enviarlo de otra forma?",
            "Cancelé el pedido {order} antes del envío, ¿cuándo me devuelven los {amount}?",
            'Su correo dice "reembolso emitido" para el pedido {order} pero en mi banco no aparece nada.',
            "La {product} era un regalo y ya tenían una igual, ¿puedo cambiarla por un vale de compra?",
        ],
        "product_question": [
            "¿La {product} es resistente al agua? Quiero usarla fuera cuando llueve.",
            "¿La {product} viene con cargador o tengo que comprarlo aparte?",
            "¿Cuál es la diferencia entre los dos tamaños de la {product} que aparecen en la web?",
            "¿Volverá a haber existencias de la {product} pronto? Llevo un mes esperando.",
            "¿Se puede usar la {product} con un enchufe europeo o solo con uno americano?",
            "¿Cuántos años de garantía tiene la {product}?",
            "¿La {product} es adecuada para niños menores de diez años?",
            "¿Qué colores hay de la {product} y tienen todos el mismo precio?",
            'La descripción de la {product} dice "carga rápida", ¿cuántos minutos tarda en cargarse del todo?',
            "¿Venden piezas de repuesto para la {product}, por ejemplo un filtro nuevo o un cable?",
        ],
    },
}

OPENERS = {"en": ["Hi,", "Hello,", "Good morning,", "Hi there,", "Dear support,", "Hey,", "", ""],
           "es": ["Hola,", "Buenos días,", "Buenas tardes,", "Estimado equipo de soporte,", "Hola de nuevo,", ""]}
CONTEXT = {
    "en": ["I have been a customer for {years} years and this never happened before.",
           "This is the {nth} time I am writing about this.", "I bought it {day} as a birthday present.",
           "I already called the hotline but nobody could help me.", "It is quite urgent for me.",
           "Your chat bot did not understand my question."],
    "es": ["Soy cliente desde hace {years} años y nunca me había pasado.",
           "Es la {nth} vez que escribo por este tema.", "Lo compré {day} como regalo de cumpleaños.",
           "Ya llamé al teléfono de atención pero nadie me supo ayudar.", "Es bastante urgente para mí.",
           "El asistente automático no entendió mi pregunta."],
}
NTH = {"en": ["second", "third", "fourth"], "es": ["segunda", "tercera", "cuarta"]}
CLOSERS = {"en": ["Thanks.", "Thank you in advance.", "Regards.", "Please help.", "Thanks for your help.",
                  "Looking forward to your reply.", ""],
           "es": ["Gracias.", "Muchas gracias.", "Saludos.", "Espero su respuesta.", "Un saludo.", ""]}
DAYS = {"en": ["on Monday", "yesterday", "last Friday", "three days ago", "before the weekend", "last week"],
        "es": ["el lunes", "ayer", "el viernes pasado", "hace tres días", "antes del fin de semana",
               "la semana pasada"]}

FIRST_EN = ["John", "Mary", "James", "Linda", "Robert", "Patricia", "Michael", "Jennifer", "David", "Susan",
            "William", "Emily"]
LAST_EN = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor", "Clark",
           "Anderson", "Thompson"]
FIRST_ES = ["Maria", "Jose", "Carmen", "Antonio", "Lucia", "Javier", "Elena", "Carlos", "Sofia", "Miguel",
            "Laura", "Pablo"]
LAST_ES = ["Garcia", "Martinez", "Lopez", "Sanchez", "Perez", "Gomez", "Fernandez", "Ruiz", "Diaz", "Moreno",
           "Romero", "Navarro"]
# every planted person name is some FIRST + " " + LAST (tests look for residual names this way)
FIRST = FIRST_EN + FIRST_ES
LAST = LAST_EN + LAST_ES
CITIES = {"en": ["Chicago", "Boston", "Seattle", "Denver", "Atlanta", "Houston", "Phoenix", "Dallas"],
          "es": ["Madrid", "Barcelona", "Sevilla", "Valencia", "Bilbao", "Zaragoza", "Málaga", "Granada"]}
AREA_CODES = ["212", "312", "415", "617", "206", "303", "404", "713", "602", "214"]
EMAIL_DOMAINS = ["example.com", "example.org", "mail.example.net"]
URL_HOSTS = ["https://shop.example.com", "https://www.example.org", "https://help.example.net"]

# (lang, intent, text): real requests in a language an en/es-only filter must drop
FOREIGN = [
    ("fr", "shipping", "Bonjour, ma commande n'est toujours pas arrivée et je voudrais savoir quand elle "
                       "sera livrée, le suivi ne change plus depuis lundi."),
    ("fr", "account_access", "Bonjour, je n'arrive plus à me connecter à mon compte depuis hier soir, "
                             "pouvez-vous m'aider s'il vous plaît ?"),
    ("fr", "refund", "Je souhaite être remboursé, le produit est arrivé cassé et je ne veux pas d'échange, "
                     "merci de me répondre rapidement."),
    ("fr", "billing", "Pourquoi ai-je été débité deux fois pour la même commande ? Merci de corriger la "
                      "facture le plus vite possible."),
    ("de", "refund", "Guten Tag, meine Bestellung ist beschädigt angekommen und ich möchte mein Geld "
                     "zurück, bitte melden Sie sich bei mir."),
    ("de", "billing", "Hallo, die Rechnung für meine letzte Bestellung ist falsch, bitte schicken Sie mir "
                      "eine neue Rechnung zu."),
    ("de", "technical_issue", "Die App stürzt jedes Mal ab, wenn ich meine Bestellungen öffnen möchte. "
                              "Können Sie mir bitte helfen?"),
    ("de", "product_question", "Ist dieses Produkt wasserdicht und wie lange gilt die Garantie? Vielen Dank "
                               "im Voraus für Ihre Antwort."),
]

# Chat transcripts: multi-line texts with quotes, which the CSV writer must quote.
AGENT_LINES = {"en": ['Agent: thanks for waiting, I am checking order "{order}" now, one moment.',
                      "Agent: I am sorry about that, let me look into it.",
                      "Agent: could you confirm the e-mail on the account, please?"],
               "es": ['Agente: gracias por esperar, reviso el pedido "{order}" ahora mismo.',
                      "Agente: lamento las molestias, lo estoy revisando.",
                      "Agente: ¿puede confirmarme el correo de la cuenta, por favor?"]}
CUSTOMER_FOLLOWUPS = {"en": ["Customer: ok, thanks, I will wait.", "Customer: sure, take your time.",
                             'Customer: it still says "processing", by the way.'],
                      "es": ["Cliente: vale, gracias, espero.", "Cliente: de acuerdo, sin prisa.",
                             'Cliente: por cierto, todavía pone "en proceso".']}

_EDIT_FILLERS = {"en": ["really", "please", "now", "again", "today", "still", "also", "just", "honestly"],
                 "es": ["ahora", "todavía", "también", "hoy", "realmente", "ya", "además"]}


# --------------------------------------------------------------------------- checksums
def _luhn_sum(digits: Sequence[int]) -> int:
    """Luhn sum with the rightmost digit at position 0 (doubled: every second digit from the right)."""
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return total


def luhn_ok(number: str) -> bool:
    """True if ``number`` (spaces and dashes allowed) has 12-19 digits and passes the Luhn check."""
    digits = [int(c) for c in number if c.isdigit()]
    return 12 <= len(digits) <= 19 and _luhn_sum(digits) % 10 == 0


def _with_luhn_digit(body: str) -> str:
    """Append the check digit that makes ``body + digit`` pass Luhn."""
    return body + str((10 - _luhn_sum([int(c) for c in body + "0"]) % 10) % 10)


def _iban_int(country: str, check: str, bban: str) -> int:
    """The ISO 13616 integer: BBAN + country + check digits, letters as 10..35."""
    return int("".join(str(int(c, 36)) for c in bban + country + check))


def make_iban(country: str, bban: str) -> str:
    """An IBAN for ``bban`` with correctly computed mod-97 check digits (no spaces)."""
    check = 98 - _iban_int(country, "00", bban) % 97
    return f"{country}{check:02d}{bban}"


def iban_ok(iban: str) -> bool:
    """True if ``iban`` (spaces allowed) passes the mod-97 check."""
    s = iban.replace(" ", "").upper()
    return len(s) >= 15 and s[:2].isalpha() and s[2:4].isdigit() and _iban_int(s[:2], s[2:4], s[4:]) % 97 == 1


# --------------------------------------------------------------------------- PII values and sentences
def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _person(rng: random.Random, lang: str) -> tuple[str, str]:
    # mostly names of the message's language, sometimes the other one (customers travel)
    es = (lang == "es") != (rng.random() < 0.15)
    return (rng.choice(FIRST_ES), rng.choice(LAST_ES)) if es else (rng.choice(FIRST_EN), rng.choice(LAST_EN))


def _card(rng: random.Random) -> str:
    body = rng.choice(["4", "4", "51", "55"])  # Visa or Mastercard prefixes
    number = _with_luhn_digit(body + _digits(rng, 15 - len(body)))
    sep = rng.choice([" ", " ", "-", ""])
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def _ssn(rng: random.Random) -> str:
    # area 001-665 or 667-899 (never 000, 666 or 9xx), group and serial never all zeros
    area = rng.choice([rng.randint(1, 665), rng.randint(667, 899)])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _phone(rng: random.Random) -> str:
    area, exchange, line = rng.choice(AREA_CODES), rng.randint(201, 989), _digits(rng, 4)
    if exchange == 555:  # 555 exchanges are reserved for fiction; keep them out of "real" numbers
        exchange = 556
    return f"({area}) {exchange}-{line}" if rng.random() < 0.6 else f"+1 {area}-{exchange}-{line}"


def _iban(rng: random.Random, lang: str) -> str:
    # DE: 18-digit BBAN (bank code + account), ES: 20 digits (bank, branch, check, account)
    return make_iban("DE", _digits(rng, 18)) if lang == "en" else make_iban("ES", _digits(rng, 20))


def _ip(rng: random.Random) -> str:
    first = rng.choice([81, 88, 92, 151, 176, 203])  # public, non-reserved first octets
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _url(rng: random.Random) -> str:
    path = rng.choice(["orders", "account/orders", "returns", "support/tickets"])
    return f"{rng.choice(URL_HOSTS)}/{path}/{rng.randint(10000, 99999)}"


def _email(rng: random.Random, lang: str) -> str:
    first, last = _person(rng, lang)
    user = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}"]).lower()
    return f"{user}@{rng.choice(EMAIL_DOMAINS)}"


# kind -> lang -> sentences with one {v} slot; the value makes the sentence carry that PII type
_PII_SENTENCES: dict[str, dict[str, list[str]]] = {
    "EMAIL_ADDRESS": {"en": ["You can reach me at {v}.", "My email is {v}, please reply there.",
                             "Please send the confirmation to {v}."],
                      "es": ["Mi correo es {v}.", "Pueden escribirme a {v}.", "Envíen la confirmación a {v}."]},
    "PHONE_NUMBER": {"en": ["Call me back on {v}.", "My phone number is {v}.", "You can call me at {v} after 5 pm."],
                     "es": ["Mi teléfono es {v}.", "Pueden llamarme al {v}.", "Llámenme al {v} por la tarde."]},
    "CREDIT_CARD": {"en": ["The card used was {v}.", "I paid with card {v}.", "It was charged to my card {v}."],
                    "es": ["La tarjeta usada fue {v}.", "Pagué con la tarjeta {v}.", "El cargo fue en la tarjeta {v}."]},
    "US_SSN": {"en": ["My SSN is {v} if you need to verify me.", "For verification, my social security number is {v}."],
               "es": ["Mi SSN es {v}.", "Mi número de seguro social es {v}."]},
    "IBAN_CODE": {"en": ["Please refund to IBAN {v}.", "My bank account is {v}."],
                  "es": ["Devuelvan el dinero al IBAN {v}.", "Mi cuenta bancaria es {v}."]},
    "IP_ADDRESS": {"en": ["The error happened from IP {v}.", "I was connected from {v} when it failed."],
                   "es": ["El error ocurrió desde la IP {v}.", "Estaba conectado desde {v} cuando falló."]},
    "URL": {"en": ["See {v} for details.", "The page {v} shows the problem."],
            "es": ["Más detalles en {v}.", "La página {v} muestra el problema."]},
    # (phrasings such as "El pedido está a nombre de {v}." are missed by an English NER model most
    # of the time; the ones below are caught reliably, so planted names test redaction, not luck)
    "PERSON": {"en": ["My name is {v}.", "This is {v}, a customer since 2019.", "I am {v} and I placed the order."],
               "es": ["Me llamo {v}.", "Me llamo {v} y soy cliente desde hace años.", "Les escribe {v}."]},
    "LOCATION": {"en": ["I live in {v}.", "I am writing from {v}.", "The parcel should go to our office in {v}."],
                 "es": ["Vivo en {v}.", "Escribo desde {v}.", "El paquete debe ir a nuestra oficina de {v}."]},
}


def _pii_value(rng: random.Random, kind: str, lang: str) -> str:
    if kind == "EMAIL_ADDRESS":
        return _email(rng, lang)
    if kind == "PHONE_NUMBER":
        return _phone(rng)
    if kind == "CREDIT_CARD":
        return _card(rng)
    if kind == "US_SSN":
        return _ssn(rng)
    if kind == "IBAN_CODE":
        return _iban(rng, lang)
    if kind == "IP_ADDRESS":
        return _ip(rng)
    if kind == "URL":
        return _url(rng)
    if kind == "PERSON":
        return " ".join(_person(rng, lang))
    if kind == "LOCATION":
        return rng.choice(CITIES[lang])
    raise ValueError(f"unknown PII type {kind!r}")


def _pii_sentence(rng: random.Random, kind: str, lang: str) -> str:
    return rng.choice(_PII_SENTENCES[kind][lang]).format(v=_pii_value(rng, kind, lang))


def _pick_pii(rng: random.Random, first: str | None = None) -> list[str]:
    """1-3 PII types (mostly one); ``first`` forces one of them (to cover every type per day)."""
    k = rng.choices((1, 2, 3), weights=(70, 25, 5))[0]
    kinds = {first} if first else set()
    while len(kinds) < k:
        kinds.add(rng.choice(PII_TYPES))
    return sorted(kinds)


# --------------------------------------------------------------------------- message texts
def _amount(rng: random.Random, lang: str) -> str:
    cents = rng.randrange(500, 30_000)
    return f"${cents // 100}.{cents % 100:02d}" if lang == "en" else f"{cents // 100},{cents % 100:02d} €"


_SLOT_MAKERS = {
    "order": lambda rng, lang: f"ORD-{rng.randrange(100000, 1000000)}",
    "product": lambda rng, lang: rng.choice(PRODUCTS[lang]),
    "amount": _amount,
    "day": lambda rng, lang: rng.choice(DAYS[lang]),
    "years": lambda rng, lang: str(rng.randrange(2, 13)),
    "nth": lambda rng, lang: rng.choice(NTH[lang]),
}


class _Slots(dict[str, str]):
    """Template fillers drawn on first use only: fewer random draws on the hot path, and a slot
    used twice in one template gets the same value."""

    def __init__(self, rng: random.Random, lang: str) -> None:
        super().__init__()
        self.rng, self.lang = rng, lang

    def __missing__(self, key: str) -> str:
        value = self[key] = _SLOT_MAKERS[key](self.rng, self.lang)
        return value


def _fill(rng: random.Random, template: str, lang: str) -> str:
    return template.format_map(_Slots(rng, lang))


def _after_greeting(body: str) -> str:
    """"Hi," + "My order..." reads "Hi, my order...", but "I" and "ORD-..." keep their case."""
    head = body.split(" ", 1)[0]
    if head in ("I", "I'm") or head.isupper() or not body[:2].strip("¿").istitle():
        return body
    i = 1 if body.startswith("¿") else 0
    return body[:i] + body[i].lower() + body[i + 1 :]


def _message(rng: random.Random, lang: str, intent: str, pii: Sequence[str], *, max_words: int = 60) -> str:
    """Greeting + main request [+ context] [+ second request] + PII sentences + closing; the optional
    sentences, then closing and greeting are dropped while it is longer than ``max_words``."""
    templates = TEMPLATES[lang][intent]
    k = rng.randrange(len(templates))
    main = templates[k]
    optional = []
    if rng.random() < 0.35:
        optional.append(_fill(rng, rng.choice(CONTEXT[lang]), lang))
    if rng.random() < 0.4:  # a second, different request of the same intent: longer, more varied texts
        optional.append(_fill(rng, templates[(k + 1 + rng.randrange(len(templates) - 1)) % len(templates)], lang))
    opener, main_body = rng.choice(OPENERS[lang]), _fill(rng, main, lang)
    body = _after_greeting(main_body) if opener else main_body
    pii_parts = [_pii_sentence(rng, kind, lang) for kind in pii]
    closer = rng.choice(CLOSERS[lang])
    while True:
        text = " ".join(p for p in (opener, body, *optional, *pii_parts, closer) if p)
        if text.count(" ") < max_words or not (optional or closer or opener):  # words = spaces + 1
            return text
        if optional:
            optional.pop()
        elif closer:
            closer = ""
        else:
            opener, body = "", main_body


def _transcript(rng: random.Random, text: str, lang: str) -> str:
    """A short multi-line chat transcript around a customer message (quotes, commas, newlines)."""
    prefix = "Customer" if lang == "en" else "Cliente"
    agent = _fill(rng, rng.choice(AGENT_LINES[lang]), lang)
    return f"{prefix}: {text}\n{agent}\n{rng.choice(CUSTOMER_FOLLOWUPS[lang])}"


def _one_line(text: str) -> str:
    """Flatten for call_notes.txt: one record per line, so no line breaks of any kind inside."""
    return " ".join(text.splitlines())


# --------------------------------------------------------------------------- near duplicates
_WS = re.compile(r"\s+")


def _canon(text: str) -> str:
    """What exact dedup compares: NFKC, case-folded, whitespace-collapsed."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _shingles(text: str, n: int = 5) -> set[str]:
    c = _canon(text)
    return {c[i : i + n] for i in range(max(1, len(c) - n + 1))}


def shingle_jaccard(a: str, b: str, n: int = 5) -> float:
    """Jaccard similarity of the character ``n``-gram sets of two canonicalised texts."""
    sa, sb = _shingles(a, n), _shingles(b, n)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


def _plain(word: str) -> bool:
    # only lower-case alphabetic words are edited: never PII values, names, numbers or cities
    return word.isalpha() and word.islower()


def _edit_words(rng: random.Random, words: list[str], lang: str, edits: int) -> list[str]:
    words = list(words)
    fillers = _EDIT_FILLERS[lang]
    for _ in range(edits):
        plain = [i for i, w in enumerate(words) if _plain(w)]
        if not plain:
            break
        pos = rng.choice(plain)
        op = rng.random()
        if op < 0.4:
            words[pos] = rng.choice([f for f in fillers if f != words[pos]])
        elif op < 0.8 and (pos == 0 or _plain(words[pos - 1])):  # never inside a name or number
            words.insert(pos, rng.choice(fillers))
        elif len(words) > 8:
            del words[pos]
    return words


def _near_dup(rng: random.Random, text: str, lang: str,
              min_similarity: float = _NEAR_MIN_SIMILARITY) -> str | None:
    """``text`` with 1-3 words substituted/inserted/deleted, still >= ``min_similarity`` similar
    (character 5-gram Jaccard) but not an exact duplicate; ``None`` if the text is too short."""
    words = text.split(" ")
    for attempt in range(6):
        edits = rng.randint(1, 3) if attempt < 4 else 1
        candidate = " ".join(_edit_words(rng, words, lang, edits))
        if _canon(candidate) != _canon(text) and shingle_jaccard(candidate, text) >= min_similarity:
            return candidate
    return None


# --------------------------------------------------------------------------- records of one day
@dataclass
class _Rec:
    """One planned record; ``kind`` is valid | dup | near | lowq (the ground truth's ``kind``)."""

    kind: str
    channel: str
    created_at: str
    text: str = ""
    label: str | None = None
    lang: str | None = None
    pii_types: list[str] = field(default_factory=list)
    src: _Rec | None = None  # the record a dup / near dup copies
    variant: str | None = None  # dup variant or bait kind
    id: str = ""
    source_file: str = ""
    txt_line: int | None = None

    @property
    def words(self) -> int:
        return len(self.text.split())


def _timestamps(rng: random.Random, day: str, n: int) -> list[str]:
    """``n`` sorted ISO-8601 UTC times within ``day`` (records are planned in time order)."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    offsets = sorted(rng.randint(0, 86_399) for _ in range(n))
    return [(start + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ") for s in offsets]


def _schedule(rng: random.Random, counts: Sequence[tuple[str, int]], head: str = "",
              head_len: int = 0) -> list[str]:
    """A shuffled list holding each name ``count`` times; the first ``head_len`` are ``head``."""
    items = [name for name, count in counts for _ in range(count)]
    n_head = min(head_len, items.count(head)) if head else 0
    for _ in range(n_head):
        items.remove(head)
    rng.shuffle(items)
    return [head] * n_head + items


def _kind_counts(n: int) -> dict[str, int]:
    dup, near = max(1, round(_DUP_RATE * n)), max(1, round(_NEAR_RATE * n))
    lowq = max(2, round(_BAIT_RATE * n))
    return {"dup": dup, "near": near, "lowq": lowq, "valid": max(1, n - dup - near - lowq)}


def _channel_counts(n: int) -> dict[str, int]:
    counts = {name: round(share * n) for name, share in _CHANNEL_SHARES[:-1]}
    counts["notes"] = n - sum(counts.values())
    return counts


def _accented(rec: _Rec) -> bool:
    return unicodedata.normalize("NFD", rec.text) != rec.text


class _DayPlanner:
    """Plans one day's landing records: valid messages plus planted duplicates and bait."""

    def __init__(self, rng: random.Random, day: str, history: Sequence[_Rec], seen: set[str]) -> None:
        self.rng = rng
        self.day = day
        self.history = history  # earlier days' valid records: duplicates may cross days
        self.seen = seen  # canonical texts so far: only planted duplicates may repeat one
        self.today: list[_Rec] = []
        # the first PII records of the day cycle through every type, so each day has all of them
        self.pii_queue = list(PII_TYPES)
        rng.shuffle(self.pii_queue)
        self.bait_queue: list[str] = []
        self.dup_queue: list[str] = []

    # ---- valid messages
    def valid(self, channel: str, created_at: str) -> _Rec:
        rng = self.rng
        lang = "en" if rng.random() < 0.75 else "es"
        intent = rng.choice(INTENTS)
        pii: list[str] = []
        if rng.random() < _PII_RATE:
            pii = _pick_pii(rng, self.pii_queue.pop() if self.pii_queue else None)
        text = _message(rng, lang, intent, pii)
        for _ in range(100):  # short template combinations do recur by chance
            if _canon(text) not in self.seen:
                break
            text = _message(rng, lang, intent, pii)
        if channel == "chat" and rng.random() < 0.25:
            text = _transcript(rng, text, lang)
        self.seen.add(_canon(text))
        return _Rec("valid", channel, created_at, text, intent, lang, pii)

    # ---- duplicates
    def _source(self, ok: Callable[[_Rec], bool] = lambda r: True) -> _Rec | None:
        """An earlier valid record: mostly today's (so same-day dedup has work), else an older one."""
        rng = self.rng
        today = [r for r in self.today if r.kind == "valid" and ok(r)]
        older = [r for r in self.history[-500:] if ok(r)]
        pools = [today, older] if rng.random() < 0.75 else [older, today]
        for pool in pools:
            if pool:
                return rng.choice(pool)
        return None

    def dup(self, channel: str, created_at: str) -> _Rec | None:
        rng = self.rng
        if not self.dup_queue:  # a fixed mix, so every day has each variant once it has >= 10 dups
            self.dup_queue = ["identical"] * 4 + ["whitespace", "whitespace", "case", "case", "nfd", "nfd"]
            rng.shuffle(self.dup_queue)
        variant = self.dup_queue.pop()
        src = self._source(_accented) if variant == "nfd" else None
        if src is None:
            variant = "identical" if variant == "nfd" else variant
            src = self._source()
        if src is None:
            return None
        text = src.text
        if variant == "whitespace":  # only surrounding whitespace differs
            text = rng.choice(["  {}", "{}  ", " {} ", "\t{}", "{}\t "]).format(text)
        elif variant == "case":  # the whole text in one case
            text = text.lower() if rng.random() < 0.7 else text.upper()
        elif variant == "nfd":  # decomposed accents: the same text after NFC/NFKC normalisation
            text = unicodedata.normalize("NFD", text)
        return _Rec("dup", channel, created_at, text, src.label, src.lang, list(src.pii_types), src, variant)

    def near(self, channel: str, created_at: str) -> _Rec | None:
        for _ in range(5):  # texts long enough to stay >= 0.85 similar after a few word edits
            src = self._source(lambda r: r.words >= 22)
            if src is None:
                return None
            text = _near_dup(self.rng, src.text, src.lang or "en")
            if text is not None and _canon(text) not in self.seen:
                self.seen.add(_canon(text))
                return _Rec("near", channel, created_at, text, src.label, src.lang, list(src.pii_types), src)
        return None

    # ---- low-quality bait
    def bait(self, channel: str, created_at: str) -> _Rec:
        rng = self.rng
        if not self.bait_queue:  # every bait kind appears once before any repeats
            self.bait_queue = ["short", "symbols", "repeated", "control", "foreign"]
            rng.shuffle(self.bait_queue)
        kind = self.bait_queue.pop()
        if kind == "control" and channel == "notes":
            kind = "short"  # call notes are plain text
        label = lang = None
        if kind == "short":
            text = rng.choice(["ok", "?", "thx", "k", "no", "hi", "...", "ok?"])
        elif kind == "symbols":
            text = " ".join(rng.choice(["$$$", "###", "!!!", "@@@", "%%%", "***", "&&&", "???", "+++", "..."])
                            for _ in range(rng.randint(5, 12)))
        elif kind == "repeated":
            line = rng.choice(["where is my order", "call me back", "llámenme por favor", "REFUND NOW"])
            text = "\n".join([line] * rng.randint(8, 20))
        elif kind == "control":  # a real request with control characters mixed in
            label, lang = rng.choice(INTENTS), "en" if rng.random() < 0.75 else "es"
            words = _message(rng, lang, label, []).split(" ")
            for _ in range(rng.randint(2, 4)):
                pos = rng.randrange(len(words))
                words[pos] = words[pos] + rng.choice(["\x00", "\x07", "\x00\x07", "\x1b"])
            text = " ".join(words)
        else:
            lang, label, text = rng.choice(FOREIGN)
        if channel == "notes":
            text = _one_line(text)
        return _Rec("lowq", channel, created_at, text, label, lang, [], None, kind)

    # ---- the day
    def plan(self, n: int) -> list[_Rec]:
        rng = self.rng
        kinds = _kind_counts(n)
        # the first records are ordinary messages: duplicates need something to copy
        kind_seq = _schedule(rng, list(kinds.items()), head="valid", head_len=min(5, kinds["valid"]))
        chan_seq = _schedule(rng, list(_channel_counts(len(kind_seq)).items()))
        times = _timestamps(rng, self.day, len(kind_seq))
        for kind, channel, ts in zip(kind_seq, chan_seq, times, strict=True):
            rec = None
            if kind == "dup":
                rec = self.dup(channel, ts)
            elif kind == "near":
                rec = self.near(channel, ts)
            elif kind == "lowq":
                rec = self.bait(channel, ts)
            if rec is None:  # nothing to copy yet: an ordinary message instead
                rec = self.valid(channel, ts)
            if channel == "notes":
                rec.text = _one_line(rec.text)
            self.today.append(rec)
        return self.today


def _assign_ids(recs: Sequence[_Rec], day: str) -> dict[str, int]:
    """``<channel>-<day>-NNNNNN`` numbered per channel in time order; returns the next number."""
    counters: Counter[str] = Counter()
    for rec in recs:
        counters[rec.channel] += 1
        rec.id = f"{rec.channel}-{day}-{counters[rec.channel]:06d}"
        rec.source_file = f"landing/dt={day}/{CHANNEL_FILES[rec.channel]}"
    return {ch: counters[ch] + 1 for ch in CHANNEL_FILES}


# --------------------------------------------------------------------------- malformed records
# Each day gets one of every kind; larger days get extra copies of the cheap kinds (~3% in all).
_MALFORMED_REQUIRED = ("email_truncated", "email_null_text", "email_number_text", "email_missing_text",
                       "email_invalid_utf8", "email_list", "email_oversized", "chat_empty_text",
                       "forum_null_text")
_MALFORMED_EXTRA = ("email_null_text", "email_number_text", "email_missing_text", "email_list",
                    "chat_empty_text", "forum_null_text")


def _malformed_kinds(n: int) -> list[str]:
    extra = max(0, round(_MALFORMED_RATE * n) - len(_MALFORMED_REQUIRED))
    return list(_MALFORMED_REQUIRED) + [_MALFORMED_EXTRA[i % len(_MALFORMED_EXTRA)] for i in range(extra)]


def _bad_email_line(kind: str, rec_id: str, created_at: str) -> bytes:
    """One JSON line that is unusable in the way ``kind`` names (and only in that way)."""
    fields = {"id": rec_id, "created_at": created_at, "customer_tier": "bronze", "channel": "email"}

    def dump(obj: object) -> bytes:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")

    if kind == "email_truncated":  # cut off mid-string: not valid JSON
        return b'{"id": "' + rec_id.encode() + b'", "text": "My order never arrived and the tracking'
    if kind == "email_null_text":
        return dump({**fields, "text": None})
    if kind == "email_number_text":
        return dump({**fields, "text": 12345})
    if kind == "email_missing_text":
        return dump(fields)
    if kind == "email_invalid_utf8":  # raw \xff\xfe bytes can never appear in UTF-8
        return (b'{"id": "' + rec_id.encode() + b'", "text": "Refund for order \xff\xfe please, it arrived broken",'
                b' "created_at": "' + created_at.encode() + b'", "channel": "email"}')
    if kind == "email_list":
        return dump([rec_id, "a JSON list instead of an object", created_at])
    if kind == "email_oversized":  # a pasted log far above any sane message size
        line = "ERROR checkout-service payment timeout after 30s, retrying request "
        return dump({**fields, "text": "Please look at this log: " + line * (_OVERSIZED_CHARS // len(line) + 1)})
    raise ValueError(f"not an e-mail malformation: {kind!r}")


# --------------------------------------------------------------------------- writers
def _write_email(path: Path, recs: Sequence[_Rec], bad: Sequence[tuple[str, str, str]],
                 rng: random.Random) -> int:
    """JSON lines, written as bytes so the invalid-UTF-8 line keeps its raw bytes."""
    lines = [json.dumps({"id": r.id, "text": r.text, "created_at": r.created_at,
                         "customer_tier": rng.choices(("gold", "silver", "bronze"), (20, 35, 45))[0],
                         "channel": "email"}, ensure_ascii=False).encode("utf-8") for r in recs]
    for kind, rec_id, created_at in bad:
        lines.insert(rng.randint(0, len(lines)), _bad_email_line(kind, rec_id, created_at))
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return len(lines)


def _write_chat(path: Path, recs: Sequence[_Rec], empty: Sequence[tuple[str, str]], rng: random.Random) -> int:
    import csv

    rows = [[r.id, r.text, r.created_at, rng.choice(["ana", "ben", "chloe", "dev", "eva", "farid"]), "chat"]
            for r in recs]
    for rec_id, created_at in empty:  # a row whose text is empty
        rows.insert(rng.randint(0, len(rows)), [rec_id, "", created_at, "ana", "chat"])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")  # minimal quoting: fields with , " or newlines
    writer.writerow(["id", "text", "created_at", "agent", "channel"])
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8"))
    return len(rows)


def _write_forum(path: Path, recs: Sequence[_Rec], null: Sequence[tuple[str, str]], rng: random.Random) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: list[dict[str, str | None]] = [
        {"id": r.id, "text": r.text, "created_at": r.created_at, "thread": f"thread-{rng.randint(1, 40):04d}",
         "channel": "forum"} for r in recs]
    for rec_id, created_at in null:
        rows.insert(rng.randint(0, len(rows)), {"id": rec_id, "text": None, "created_at": created_at,
                                                "thread": "thread-0000", "channel": "forum"})
    schema = pa.schema([(name, pa.string()) for name in ("id", "text", "created_at", "thread", "channel")])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return len(rows)


def _write_notes(path: Path, recs: Sequence[_Rec]) -> int:
    for line_no, rec in enumerate(recs, start=1):
        rec.txt_line = line_no
    path.write_bytes("".join(r.text + "\n" for r in recs).encode("utf-8"))
    return len(recs)


def _write_api(folder: Path, recs: Sequence[_Rec], day: str) -> dict[str, int]:
    """Pages of ``_API_PAGE_SIZE`` items linked by ``next``; field names differ from the files'."""
    folder.mkdir(parents=True, exist_ok=True)
    pages = [recs[i : i + _API_PAGE_SIZE] for i in range(0, len(recs), _API_PAGE_SIZE)] or [[]]
    counts = {}
    for number, page in enumerate(pages, start=1):
        name = f"page-{number}.json"
        for rec in page:
            rec.source_file = f"api/dt={day}/{name}"
        payload = {"items": [{"id": r.id, "body": r.text, "posted_at": r.created_at, "lang_hint": r.lang}
                             for r in page],
                   "next": f"page-{number + 1}.json" if number < len(pages) else None}
        (folder / name).write_bytes(json.dumps(payload, ensure_ascii=False, indent=1).encode("utf-8") + b"\n")
        counts[f"api/dt={day}/{name}"] = len(page)
    return counts


# --------------------------------------------------------------------------- product reviews (HF dataset)
_REVIEW_OPENERS = {
    "en": {1: ["Terrible.", "One star, very disappointed."], 2: ["Not great.", "Disappointing purchase."],
           3: ["It is okay.", "Average product."], 4: ["Good value.", "Pretty happy with it."],
           5: ["Love it!", "Excellent, five stars."]},
    "es": {1: ["Horrible.", "Una estrella, muy decepcionado."], 2: ["No muy bueno.", "Compra decepcionante."],
           3: ["Está bien.", "Producto normal."], 4: ["Buena relación calidad-precio.", "Bastante contento."],
           5: ["¡Me encanta!", "Excelente, cinco estrellas."]},
}


def _reviews(seed: int, days: Sequence[str]) -> list[_Rec]:
    """Product reviews whose text also carries a support intent (bad ratings: refunds, defects)."""
    rng = random.Random(f"llmops-sample:{seed}:reviews")
    out = []
    for i in range(1, _N_REVIEWS + 1):
        lang = "en" if rng.random() < 0.8 else "es"
        rating = rng.choices((1, 2, 3, 4, 5), (15, 15, 20, 25, 25))[0]
        intent = rng.choice(("refund", "technical_issue", "shipping") if rating <= 2 else
                            ("product_question", "product_question", "billing", "shipping"))
        pii = _pick_pii(rng) if rng.random() < 0.25 else []
        text = f"{rng.choice(_REVIEW_OPENERS[lang][rating])} {_message(rng, lang, intent, pii, max_words=50)}"
        created = _timestamps(rng, rng.choice(list(days)), 1)[0]
        rec = _Rec("valid", "reviews", created, text, intent, lang, pii, id=f"review-{i:06d}",
                   source_file="hf/product_reviews", variant=str(rating))
        out.append(rec)
    return out


def _save_reviews(folder: Path, recs: Sequence[_Rec]) -> None:
    import hashlib

    import datasets
    import pyarrow as pa

    rows = [{"id": r.id, "text": r.text, "created_at": r.created_at, "rating": int(r.variant or 0)} for r in recs]
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("created_at", pa.string()),
                        ("rating", pa.int64())])
    # a content-derived fingerprint (instead of a random one) keeps state.json byte-identical per seed
    fingerprint = hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()[:16]
    datasets.disable_progress_bars()
    dataset = datasets.Dataset(pa.Table.from_pylist(rows, schema=schema), fingerprint=fingerprint)
    dataset.save_to_disk(str(folder))


# --------------------------------------------------------------------------- ground truth and summary
def _truth_entry(rec: _Rec, day: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": rec.id, "label": rec.label, "lang": rec.lang, "pii_types": rec.pii_types,
        "dup_of": rec.src.id if rec.kind == "dup" and rec.src else None,
        "near_dup_of": rec.src.id if rec.kind == "near" and rec.src else None,
        "kind": rec.kind, "day": day, "channel": rec.channel, "source": rec.source_file,
    }
    if rec.kind == "dup":
        entry["dup_variant"] = rec.variant
    if rec.kind == "lowq":
        entry["bait"] = rec.variant
    if rec.txt_line is not None:  # txt lines have no id in the file: join on (file, line) instead
        entry["txt_line"] = {"file": rec.source_file, "line": rec.txt_line}
    return entry


def _tally(entries: Sequence[dict[str, Any]], malformed: int) -> dict[str, int]:
    """Planted counts of ground-truth ``entries`` (malformed records have no entry: counted apart)."""
    kinds = Counter(e["kind"] for e in entries)
    return {"valid": kinds["valid"], "exact_duplicates": kinds["dup"], "near_duplicates": kinds["near"],
            "low_quality_or_foreign": kinds["lowq"], "malformed": malformed,
            "pii_records": sum(1 for e in entries if e["pii_types"]), "ground_truth_records": len(entries)}


# --------------------------------------------------------------------------- public API
def generate(out_dir: str | Path, *, seed: int = 0, records_per_day: int = 200,
             days: Iterable[str] = ("2026-11-25", "2026-11-26", "2026-11-27")) -> dict[str, Any]:
    """Write the sample corpus under ``out_dir`` and return its summary (also written to
    ``out_dir/sample_manifest.json``; paths in it are relative to ``out_dir``).

    ``records_per_day`` counts the landing records with a usable id or line (valid messages,
    duplicates and bait); malformed records come on top (~3%), API items too (~15%).
    """
    out = Path(out_dir)
    days = [date.fromisoformat(d).isoformat() for d in days]  # validates and canonicalises
    if not days:
        raise ValueError("days must name at least one YYYY-MM-DD day")
    if records_per_day < 20:
        raise ValueError("records_per_day must be at least 20 (room for the planted problems)")
    history: list[_Rec] = []
    seen: set[str] = set()
    truth: list[dict[str, Any]] = []
    files: dict[str, int] = {}
    by_day: dict[str, dict[str, Any]] = {}
    for day in days:
        day_truth, day_files, malformed = _generate_day(out, seed, day, records_per_day, history, seen)
        truth += day_truth
        files.update(day_files)
        by_day[day] = {**_tally(day_truth, sum(malformed.values())), "malformed_by_file": malformed}
    reviews = _reviews(seed, days)
    _save_reviews(out / "hf" / "product_reviews", reviews)
    review_truth = [_truth_entry(r, r.created_at[:10]) for r in reviews]
    truth += review_truth
    files["hf/product_reviews"] = len(reviews)
    write_jsonl(out / "ground_truth" / "labels.jsonl", truth)
    summary = {
        "seed": seed,
        "days": days,
        "records_per_day": records_per_day,
        "paths": {"landing": [f"landing/dt={d}" for d in days], "api": [f"api/dt={d}" for d in days],
                  "hf_dataset": "hf/product_reviews", "ground_truth": "ground_truth/labels.jsonl",
                  "manifest": "sample_manifest.json"},
        "files": files,
        "planted": _tally(truth, sum(d["malformed"] for d in by_day.values())),
        "by_day": by_day,
        "hf_reviews": {"rows": len(reviews), "pii_records": sum(1 for r in reviews if r.pii_types)},
        "hf_dataset": "hf/product_reviews",
        "ground_truth": "ground_truth/labels.jsonl",
    }
    (out / "sample_manifest.json").write_bytes(json.dumps(summary, indent=2, sort_keys=True).encode() + b"\n")
    return summary


def _generate_day(out: Path, seed: int, day: str, n: int, history: list[_Rec],
                  seen: set[str]) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, int]]:
    """Plan and write one day's landing files and API pages; returns (truth, file counts, malformed)."""
    # one generator per (seed, day): a day's files do not depend on which other days are generated,
    # apart from cross-day duplicates of earlier days
    rng = random.Random(f"llmops-sample:{seed}:{day}")
    recs = _DayPlanner(rng, day, history, seen).plan(n)
    next_no = _assign_ids(recs, day)
    by_channel = {ch: [r for r in recs if r.channel == ch] for ch in CHANNEL_FILES}

    # malformed records get ids after the day's valid ones and a time within the day
    bad: dict[str, list[tuple[str, str, str]]] = {ch: [] for ch in CHANNEL_FILES}
    kinds = _malformed_kinds(n)
    for kind, ts in zip(kinds, _timestamps(rng, day, len(kinds)), strict=True):
        ch = kind.split("_", 1)[0]
        bad[ch].append((kind, f"{ch}-{day}-{next_no[ch]:06d}", ts))
        next_no[ch] += 1

    land = out / "landing" / f"dt={day}"
    land.mkdir(parents=True, exist_ok=True)
    rel = f"landing/dt={day}"
    files = {
        f"{rel}/email_tickets.jsonl": _write_email(land / "email_tickets.jsonl", by_channel["email"],
                                                   bad["email"], rng),
        f"{rel}/chat_logs.csv": _write_chat(land / "chat_logs.csv", by_channel["chat"],
                                            [(i, t) for _, i, t in bad["chat"]], rng),
        f"{rel}/forum_posts.parquet": _write_forum(land / "forum_posts.parquet", by_channel["forum"],
                                                   [(i, t) for _, i, t in bad["forum"]], rng),
        f"{rel}/call_notes.txt": _write_notes(land / "call_notes.txt", by_channel["notes"]),
    }
    malformed = {f"{rel}/{CHANNEL_FILES[ch]}": len(bad[ch]) for ch in CHANNEL_FILES if bad[ch]}

    planner = _DayPlanner(rng, day, [], seen)  # API items: ordinary messages only
    api = [planner.valid("api", ts) for ts in _timestamps(rng, day, max(3, round(_API_RATE * n)))]
    for number, rec in enumerate(api, start=1):
        rec.id = f"api-{day}-{number:06d}"
    files.update(_write_api(out / "api" / f"dt={day}", api, day))

    history.extend(r for r in recs if r.kind == "valid")
    return [_truth_entry(r, day) for r in [*recs, *api]], files, malformed


def write_jsonl(path: str | Path, docs: Iterable[dict[str, Any]]) -> int:
    """Write ``docs`` as UTF-8 JSON lines (keys in insertion order); returns the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for doc in docs:
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
            n += 1
    return n


_ORDER_REFS = {"en": [" Order{order}.", " My order number is{order}.", " Reference:{order}."],
               "es": [" Pedido{order}.", " Mi número de pedido es{order}.", " Referencia:{order}."]}


def iter_short_docs(n: int, *, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` short raw documents ``{"id", "text", "created_at"}`` for benchmarks, fast (no I/O):
    ~10% with one PII sentence, ~5% exact and ~3% near duplicates of recent documents."""
    rng = random.Random(seed)
    recent: list[str] = []  # a ring of recent texts to copy
    recent_long: list[tuple[str, str]] = []  # (text, lang) long enough for a similar near duplicate
    ring = 512
    start, day_prefix = date(2026, 11, 1), ""
    for i in range(n):
        roll = rng.random()
        text: str | None = None
        if roll < 0.05 and recent:
            text = rng.choice(recent)
        elif roll < 0.08 and recent_long:
            text = _near_dup(rng, *rng.choice(recent_long))
        if text is None:
            lang = "en" if rng.random() < 0.75 else "es"
            pii = [rng.choice(PII_TYPES)] if rng.random() < 0.10 else []
            text = _message(rng, lang, rng.choice(INTENTS), pii, max_words=45)
            if "ORD-" not in text:  # a random reference makes chance repeats rare without a seen-set
                text += rng.choice(_ORDER_REFS[lang]).format(order=f" ORD-{rng.randrange(100000, 1000000)}")
            slot = i % ring
            if len(recent) < ring:
                recent.append(text)
            else:
                recent[slot] = text
            if len(text.split()) >= 22:
                if len(recent_long) < ring:
                    recent_long.append((text, lang))
                else:
                    recent_long[slot] = (text, lang)
        days, secs = divmod(i, 86_400)  # one document per second from 2026-11-01T00:00:00Z
        if secs == 0 or not day_prefix:  # datetime arithmetic once a day, not once a document
            day_prefix = (start + timedelta(days=days)).isoformat()
        minutes, sec = divmod(secs, 60)
        yield {"id": f"doc-{i:08d}", "text": text,
               "created_at": f"{day_prefix}T{minutes // 60:02d}:{minutes % 60:02d}:{sec:02d}Z"}
