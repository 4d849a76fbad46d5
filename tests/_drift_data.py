"""Synthetic support-like messages for drift tests: support topics in English and Spanish, two
sources, optional long messages, and an off-topic ("gardening") vocabulary to shift to."""

from __future__ import annotations

import random

__all__ = ["make_rows"]

TOPICS = {
    "en": {
        "billing": ["invoice", "charged twice", "payment", "bill", "statement", "card was debited"],
        "shipping": ["parcel", "courier", "delivery", "tracking number", "package", "shipment"],
        "account": ["password", "login", "two-factor code", "account locked", "sign in", "username"],
        "gardening": ["tomato seedlings", "compost", "pruning roses", "soil acidity", "watering can", "mulch"],
    },
    "es": {
        "billing": ["factura", "cobro doble", "pago", "recibo", "tarjeta cargada", "importe"],
        "shipping": ["paquete", "mensajero", "entrega", "número de seguimiento", "envío", "repartidor"],
        "account": ["contraseña", "inicio de sesión", "código de verificación", "cuenta bloqueada", "usuario",
                    "acceso"],
        "gardening": ["semillas de tomate", "abono", "poda de rosas", "acidez del suelo", "regadera", "acolchado"],
    },
}
FRAMES = {
    "en": ["I have a problem with the {a}, and the {b} is not right.", "Hello, my {a} needs attention; also the {b}.",
           "Why is the {a} like this? The {b} was fine before.", "Please check the {a} and the {b} today.",
           "Since yesterday the {a} is an issue and I wonder about the {b}."],
    "es": ["Tengo un problema con {a}, y {b} no está bien.", "Hola, {a} necesita atención; también {b}.",
           "¿Por qué {a} está así? {b} estaba bien antes.", "Por favor revisen {a} y {b} hoy.",
           "Desde ayer {a} es un problema y me pregunto por {b}."],
}
FILLER = {"en": " Thanks for your help, I have been a customer for years and I hope this gets sorted soon.",
          "es": " Gracias por la ayuda, soy cliente desde hace años y espero que se resuelva pronto."}


def make_rows(n: int, seed: int, *, es_share: float = 0.25, topics: dict[str, list[str]] | None = None,
              long_share: float = 0.1) -> list[dict]:
    """Support-like messages: ``topics`` per language (default: the three support topics)."""
    rng = random.Random(seed)
    topics = topics or {"en": ["billing", "shipping", "account"], "es": ["billing", "shipping", "account"]}
    rows = []
    for i in range(n):
        lang = "es" if rng.random() < es_share else "en"
        topic = rng.choice(topics[lang])
        a, b = rng.sample(TOPICS[lang][topic], 2)
        text = rng.choice(FRAMES[lang]).format(a=a, b=b)
        if rng.random() < long_share:
            text += FILLER[lang] * rng.randint(1, 3)
        rows.append({"id": f"{seed}-{i}", "text": text, "lang": lang, "source": rng.choice(["email", "chat"]),
                     "meta": {"topic": topic}})
    return rows
