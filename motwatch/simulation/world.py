"""The world the journeys are drawn from: shop, products, currencies, languages and texts, channels.

The shop's products and their onboarding plans, currencies, languages with their texts, campaigns,
content pages, and what each channel offers (social networks, chat topics, payment failures, review
platforms, referrers). Data only: the generator picks from it with its seeded random numbers, so
the order of every tuple and dict here is part of what a seed produces.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "AD_REFERRER",
    "BLOG_LINKS",
    "BLOG_POSTS",
    "BY_PLAN",
    "CAMPAIGNS",
    "CHAT_TOPICS",
    "FX",
    "GUIDES",
    "LANGS",
    "LANG_CODES",
    "LANG_WEIGHTS",
    "MAIL_REFERRER",
    "PARCEL_TRACKING",
    "PAYMENT_REASONS",
    "PLANS",
    "PRODUCTS",
    "REVIEW_PLATFORMS",
    "SEARCH_REFERRER",
    "SEARCH_URL",
    "SHOP",
    "SOCIAL",
    "SOCIAL_ACTIONS",
    "SOCIAL_AD_REFERRER",
    "Product",
]

SHOP = "https://shop.example"


class Product(NamedTuple):
    """A product of the shop: its id, its price in EUR, and the onboarding plan it comes with."""

    pid: str
    price_eur: float
    plan: str | None

    @property
    def url(self) -> str:
        return f"{SHOP}/p/{self.pid}"


_BASE_PRODUCTS: tuple[tuple[str, float, str | None], ...] = (
    ("desk-lamp", 39.0, None),
    ("kettle", 29.9, None),
    ("espresso-machine", 249.0, None),
    ("wireless-headphones", 129.0, None),
    ("wifi-router", 119.0, "home-network"),
    ("smart-thermostat", 189.0, "smart-home"),
    ("robot-vacuum", 299.0, "smart-home"),
    ("security-camera", 99.0, "cloud-video"),
    ("e-reader", 139.0, "library"),
    ("fitness-watch", 179.0, "coach"),
    ("smart-speaker", 79.0, "assistant"),
    ("ink-printer", 149.0, "ink-plus"),
    ("city-backpack", 69.0, None),
    ("running-shoes", 109.0, None),
    ("rain-jacket", 89.0, None),
    ("blender", 59.0, None),
    ("air-purifier", 199.0, None),
    ("office-chair", 229.0, None),
    ("monitor-27", 279.0, None),
    ("mech-keyboard", 99.0, None),
    ("phone-case", 19.9, None),
    ("bike-light", 24.9, None),
    ("yoga-mat", 34.9, None),
    ("plant-pot", 14.9, None),
)
PRODUCTS: tuple[Product, ...] = tuple(
    Product(f"{slug}-{variant}", round(price * (1 + 0.12 * variant), 2), plan)
    for slug, price, plan in _BASE_PRODUCTS
    for variant in range(1, 7)
)
PLANS: tuple[str, ...] = tuple(sorted({p.plan for p in PRODUCTS if p.plan}))
BY_PLAN: dict[str, tuple[Product, ...]] = {
    plan: tuple(p for p in PRODUCTS if p.plan == plan) for plan in PLANS
}

# Currency: (rate from EUR, digits to round to).
FX: dict[str, tuple[float, int]] = {
    "EUR": (1.0, 2),
    "CZK": (25.2, 0),
    "PLN": (4.3, 2),
    "GBP": (0.85, 2),
    "USD": (1.08, 2),
    "JPY": (162.0, 0),
    "VND": (27500.0, -3),
    "IRR": (45000.0, -4),
}

# Per language: (weight, currencies, phrases).
LANGS: dict[str, tuple[float, tuple[str, ...], dict[str, tuple[str, ...]]]] = {
    "cs": (
        0.16,
        ("CZK", "EUR"),
        {
            "search": (
                "stolní lampa",
                "bezdrátová sluchátka",
                "rychlovarná konvice nerez",
                "chytrý termostat",
            ),
            "ask": (
                "Dobrý den, je tahle lampa skladem?",
                "Kdy mi dorazí objednávka?",
                "Dá se platit při převzetí?",
            ),
            "nudge": ("Haló, je tam někdo?", "Prosím o odpověď."),
            "answer": ("Dobrý den, ano, máme skladem 12 kusů.", "Zásilka je na cestě, dorazí zítra."),
            "bot": ("Dobrý den! Jsem virtuální asistent, s čím vám mohu pomoci?",),
            "thanks": ("Děkuji, to je vše.", "Super, díky!"),
            "good_review": (
                "Skvělá kvalita, doručení do druhého dne. Doporučuji!",
                "Lampa svítí krásně, jsem spokojená.",
            ),
            "bad_review": ("Přišlo to rozbité a nikdo se mi neozval. Zklamání.", "Kvalita nic moc, vracím."),
            "good_note": ("Všechno proběhlo hladce, děkuji.",),
            "bad_note": ("Na odpověď jsem čekal příliš dlouho.", "Objednávka byla zmatená."),
        },
    ),
    "hr": (
        0.12,
        ("EUR",),
        {
            "search": ("stolna svjetiljka", "bežične slušalice", "kuhalo za vodu", "pametni termostat"),
            "ask": ("Kada stiže paket?", "Imate li ovo u crnoj boji?", "Mogu li platiti pouzećem?"),
            "nudge": ("Ima li koga?", "Halo?"),
            "answer": ("Sutra do podne.", "Da, imamo na zalihi.", "Paket je poslan jučer."),
            "bot": ("Pozdrav! Ja sam virtualni asistent. Kako vam mogu pomoći?",),
            "thanks": ("Hvala, to je sve.", "Super, hvala!"),
            "good_review": (
                "Odlična kvaliteta, brza dostava. Preporučujem!",
                "Sve je stiglo uredno, čestitke.",
            ),
            "bad_review": ("Proizvod je stigao oštećen, nitko mi ne odgovara.", "Loša kvaliteta, vraćam."),
            "good_note": ("Sve je bilo u redu, hvala.",),
            "bad_note": ("Predugo sam čekao odgovor.", "Naplata je bila komplicirana."),
        },
    ),
    "vi": (
        0.12,
        ("VND",),
        {
            "search": ("đèn bàn", "tai nghe không dây", "ấm đun nước", "máy lọc không khí"),
            "ask": (
                "Khi nào tôi nhận được hàng?",
                "Sản phẩm này còn hàng không?",
                "Có giao hàng nhanh không?",
            ),
            "nudge": ("Có ai ở đó không?", "Xin trả lời giúp tôi."),
            "answer": ("Đơn hàng sẽ được giao vào ngày mai.", "Dạ còn hàng ạ."),
            "bot": ("Xin chào! Tôi là trợ lý ảo, tôi có thể giúp gì cho bạn?",),
            "thanks": ("Cảm ơn bạn nhiều!", "Vâng, cảm ơn."),
            "good_review": ("Đèn đẹp, giao hàng nhanh.", "Chất lượng tuyệt vời, rất hài lòng!"),
            "bad_review": ("Hàng bị hỏng khi nhận, rất thất vọng.", "Giao hàng chậm và không ai trả lời."),
            "good_note": ("Mọi thứ đều tốt, cảm ơn.",),
            "bad_note": ("Tôi phải chờ quá lâu.",),
        },
    ),
    "fa": (
        0.10,
        ("IRR", "EUR"),
        {
            "search": ("چراغ مطالعه", "هدفون بی‌سیم", "کتری برقی", "جاروبرقی رباتیک"),
            "ask": ("سفارش من کی می‌رسد؟", "آیا این محصول موجود است؟"),
            "nudge": ("کسی آنجا هست؟", "لطفاً جواب بدهید."),
            "answer": ("سفارش شما فردا تحویل داده می‌شود.", "بله، موجود است."),
            "bot": ("سلام! من دستیار مجازی هستم. چطور می‌توانم کمک کنم؟",),
            "thanks": ("خیلی ممنون!", "متشکرم."),
            "good_review": ("کیفیت عالی و ارسال سریع. پیشنهاد می‌کنم!", "از خریدم خیلی راضی هستم."),
            "bad_review": ("محصول شکسته رسید و هیچ‌کس پاسخ نداد.", "کیفیت خیلی بد بود."),
            "good_note": ("همه چیز عالی بود، ممنون.",),
            "bad_note": ("خیلی طول کشید تا جواب بدهند.",),
        },
    ),
    "de": (
        0.14,
        ("EUR",),
        {
            "search": ("Schreibtischlampe", "kabellose Kopfhörer", "Wasserkocher Edelstahl", "Luftreiniger"),
            "ask": (
                "Wann kommt meine Bestellung an?",
                "Ist die Lampe vorrätig?",
                "Kann ich auf Rechnung zahlen?",
            ),
            "nudge": ("Hallo, ist da jemand?", "Bitte um Antwort."),
            "answer": ("Ihre Bestellung kommt morgen an.", "Ja, sie ist auf Lager."),
            "bot": ("Hallo! Ich bin der virtuelle Assistent. Wie kann ich helfen?",),
            "thanks": ("Danke, das war's.", "Super, vielen Dank!"),
            "good_review": (
                "Super Qualität, schnelle Lieferung. Gerne wieder!",
                "Genau wie beschrieben, top.",
            ),
            "bad_review": (
                "Kam kaputt an, und niemand antwortet. Enttäuschend.",
                "Qualität mangelhaft, geht zurück.",
            ),
            "good_note": ("Alles bestens, danke.",),
            "bad_note": ("Ich musste viel zu lange warten.", "Der Bezahlvorgang war umständlich."),
        },
    ),
    "pl": (
        0.10,
        ("PLN",),
        {
            "search": ("lampka biurkowa", "słuchawki bezprzewodowe", "czajnik elektryczny"),
            "ask": ("Kiedy dotrze moje zamówienie?", "Czy ten produkt jest dostępny?"),
            "nudge": ("Halo, jest tam ktoś?", "Proszę o odpowiedź."),
            "answer": ("Zamówienie dotrze jutro.", "Tak, produkt jest dostępny."),
            "bot": ("Cześć! Jestem wirtualnym asystentem. W czym mogę pomóc?",),
            "thanks": ("Dziękuję, to wszystko.",),
            "good_review": (
                "Świetna jakość, szybka dostawa. Polecam!",
                "Zgodne z opisem, jestem zadowolona.",
            ),
            "bad_review": ("Paczka przyszła uszkodzona, nikt nie odpowiada.", "Słaba jakość, zwracam."),
            "good_note": ("Wszystko w porządku, dziękuję.",),
            "bad_note": ("Za długo czekałem na odpowiedź.",),
        },
    ),
    "ja": (
        0.08,
        ("JPY",),
        {
            "search": ("デスクライト", "ワイヤレスイヤホン", "電気ケトル"),
            "ask": ("注文はいつ届きますか？", "この商品は在庫がありますか？"),
            "nudge": ("すみません、どなたかいますか？",),
            "answer": ("ご注文は明日お届けします。", "はい、在庫がございます。"),
            "bot": ("こんにちは！バーチャルアシスタントです。ご用件をどうぞ。",),
            "thanks": ("ありがとうございました。",),
            "good_review": ("品質が素晴らしく、配送も早かったです。",),
            "bad_review": ("商品が壊れて届きました。返信もありません。",),
            "good_note": ("とても満足しています。",),
            "bad_note": ("待ち時間が長すぎました。",),
        },
    ),
    "es": (
        0.08,
        ("EUR", "USD"),
        {
            "search": ("lámpara de escritorio", "auriculares inalámbricos", "hervidor eléctrico"),
            "ask": ("¿Cuándo llega mi pedido?", "¿Tienen este producto en stock?"),
            "nudge": ("¿Hola? ¿Hay alguien?",),
            "answer": ("Su pedido llegará mañana.", "Sí, está disponible."),
            "bot": ("¡Hola! Soy el asistente virtual. ¿En qué puedo ayudarle?",),
            "thanks": ("¡Gracias, eso es todo!",),
            "good_review": ("Excelente calidad y envío rápido. ¡Lo recomiendo!",),
            "bad_review": ("Llegó roto y nadie responde. Muy decepcionado.",),
            "good_note": ("Todo perfecto, gracias.",),
            "bad_note": ("Esperé demasiado una respuesta.",),
        },
    ),
    "en": (
        0.10,
        ("GBP", "USD", "EUR"),
        {
            "search": ("desk lamp", "wireless headphones", "electric kettle", "robot vacuum"),
            "ask": ("When will my order arrive?", "Is this in stock?", "Can I change the delivery address?"),
            "nudge": ("Hello? Anyone there?", "Still waiting…"),
            "answer": ("Your order arrives tomorrow.", "Yes, we have it in stock."),
            "bot": ("Hi! I'm the virtual assistant. How can I help?",),
            "thanks": ("Thanks, that's all! 👍",),
            "good_review": ("Great quality and fast delivery. Recommended! 👍", "Exactly as described."),
            "bad_review": (
                "Arrived broken and nobody answers. Very disappointed 😞",
                "Cheap quality, returning it.",
            ),
            "good_note": ("Everything went smoothly, thanks.",),
            "bad_note": ("I waited far too long for an answer.", "Checkout was confusing."),
        },
    ),
}
LANG_CODES = tuple(LANGS)
LANG_WEIGHTS = tuple(v[0] for v in LANGS.values())

CAMPAIGNS = (
    "spring-sale",
    "newsletter-12",
    "back-to-school",
    "smart-home-week",
    "black-friday",
    "retarget-7",
)
SOCIAL = ("instagram", "tiktok", "facebook", "youtube", "pinterest")
SOCIAL_ACTIONS = ("like", "share", "comment", "follow")
CHAT_TOPICS = ("product_question", "delivery", "payment", "returns", "warranty")
PAYMENT_REASONS = ("card_declined", "3ds_timeout", "insufficient_funds", "issuer_unavailable")
REVIEW_PLATFORMS = ("shop", "google", "trustpilot", "heureka")

# The shop's content pages: blog posts, the pages they link to, and guides.
BLOG_POSTS = ("gift-guide", "how-to-choose", "care-tips")
BLOG_LINKS = ("faq", "shipping", "returns")
GUIDES = ("sizes", "warranty", "assembly")

# Where visitors come from: the search engine, and the referrer a click in each channel leaves.
SEARCH_URL = "https://www.google.com/search"
SEARCH_REFERRER = "https://www.google.com/"
AD_REFERRER = "https://ads.example/click"
SOCIAL_AD_REFERRER = "https://l.instagram.com/"
MAIL_REFERRER = "https://mail.example/"
# The carrier's tracking pages (one per order).
PARCEL_TRACKING = "https://track.parcel.example"
