//! Words that mark a one-time code or a verification link, and words that mark a number
//! as something else (an order, a price, a phone number), in the common languages.
//! Everything is lower case; matching lower-cases the text character by character.

/// A marker word and how strongly it points at a code (0 to 1).
pub struct Word {
    /// Lower-case form; a stem matches longer words (`verif` in `verification`).
    pub text: &'static str,
    /// Strength of the hint.
    pub weight: f32,
    /// May end a compound word (`Bestätigungscode`, `verificatiecode`).
    pub compound: bool,
}

const fn w(text: &'static str, weight: f32) -> Word {
    Word {
        text,
        weight,
        compound: false,
    }
}

const fn tail(text: &'static str, weight: f32) -> Word {
    Word {
        text,
        weight,
        compound: true,
    }
}

/// Words next to one-time codes.
pub const CODE_WORDS: &[Word] = &[
    // English
    tail("code", 1.0),
    w("passcode", 1.0),
    w("pin", 0.9),
    w("otp", 1.0),
    w("one-time", 1.0),
    w("one time", 1.0),
    w("2fa", 0.9),
    w("two-factor", 0.9),
    w("verification", 0.85),
    w("verify", 0.75),
    w("security key", 0.7),
    w("token", 0.6),
    w("confirm", 0.6),
    w("password", 0.45),
    // German, Dutch, Scandinavian
    tail("bestätigungscode", 1.0),
    w("bestätigung", 0.7),
    w("sicherheitscode", 1.0),
    w("verifizierung", 0.8),
    w("einmal", 0.8),
    w("kennwort", 0.45),
    w("verificatie", 0.8),
    w("bevestig", 0.6),
    tail("kod", 1.0),
    tail("kode", 1.0),
    w("verifiering", 0.8),
    w("bekræft", 0.6),
    // Romance
    w("código", 1.0),
    w("codigo", 1.0),
    w("codice", 1.0),
    w("clave", 0.8),
    w("verificación", 0.85),
    w("verificacion", 0.85),
    w("verificação", 0.85),
    w("verificacao", 0.85),
    w("vérification", 0.85),
    w("verifica", 0.8),
    w("confirmación", 0.6),
    w("confirmação", 0.6),
    w("conferma", 0.6),
    w("senha", 0.45),
    w("mot de passe", 0.45),
    w("contraseña", 0.45),
    // Slavic, Baltic, Hungarian, Turkish, Greek
    w("код", 1.0),
    w("кодом", 1.0),
    w("кода", 1.0),
    w("подтвержд", 0.7),
    w("провер", 0.6),
    w("пароль", 0.5),
    w("kód", 1.0),
    w("kodu", 1.0),
    w("weryfika", 0.85),
    w("potwierdz", 0.6),
    w("ellenőrző", 0.85),
    w("doğrulama", 0.85),
    w("şifre", 0.5),
    w("κωδικ", 1.0),
    // Asian scripts
    w("验证码", 1.0),
    w("驗證碼", 1.0),
    w("校验码", 1.0),
    w("动态码", 1.0),
    w("确认码", 1.0),
    w("验证", 0.8),
    w("認証コード", 1.0),
    w("確認コード", 1.0),
    w("ワンタイム", 1.0),
    w("コード", 1.0),
    w("認証", 0.8),
    w("인증번호", 1.0),
    w("인증 코드", 1.0),
    w("인증", 0.8),
    w("코드", 1.0),
    w("mã xác minh", 1.0),
    w("mã", 0.7),
    w("kode", 1.0),
    w("verifikasi", 0.85),
    w("رمز", 1.0),
    w("كود", 1.0),
    w("التحقق", 0.8),
    w("कोड", 1.0),
    w("รหัส", 1.0),
    w("קוד", 1.0),
];

/// Words that make a nearby number something other than a code.
pub const DECOY_WORDS: &[&str] = &[
    "order", "invoice", "total", "amount", "price", "subtotal", "paid", "phone", "tel", "fax",
    "call", "zip", "postal", "postcode", "tracking", "reference", "ref", "booking",
    "reservation", "ticket", "account number", "customer", "member", "case", "promo", "coupon",
    "discount", "voucher", "gift", "qty", "quantity", "sku", "item", "flight", "room", "suite",
    "street", "no.", "nr.", "#", "bestellung", "rechnung", "betrag", "summe", "telefon",
    "pedido", "factura", "importe", "teléfono", "commande", "facture", "montant", "ordine",
    "fattura", "importo", "encomenda", "заказ", "сумма", "телефон", "sipariş", "tutar",
    "注文", "订单", "金额", "電話", "电话", "주문", "zamówieni", "kwota", "bestelling",
    "bedrag", "gutschein", "rabatt", "descuento", "cupón", "barcode", "card", "karte",
    "tarjeta", "cartão", "carte", "carta", "карта", "kart", "karty", "ip",
];

/// Words that may stand between a decoy word and its number (`Order number: 123456`).
pub const DECOY_FILLERS: &[&str] = &[
    "number", "no", "nr", "num", "id", "is", "of", "your", "nummer", "número", "numero",
    "numéro", "номер", "n", "nº", "ending", "in", "numer", "numarası", "番号", "号",
];

/// Characters that make an adjacent number money.
pub const CURRENCY: &[char] = &['$', '€', '£', '¥', '₹', '₽', '₩', '₺', '¢'];

/// Link labels and URL words of verification and magic sign-in links (lower case).
pub const LINK_WORDS: &[&str] = &[
    "verify", "verif", "confirm", "activat", "activ", "validat", "magic", "sign in", "sign-in",
    "signin", "log in", "login", "log-in", "auth", "one-click", "passwordless", "bestätig",
    "aktivier", "anmelden", "einloggen", "confirmar", "verificar", "activar", "iniciar sesión",
    "entrar", "acessar", "confirmer", "vérifier", "valider", "activer", "se connecter",
    "conferma", "verifica", "attiva", "accedi", "bevestig", "activeer", "inloggen",
    "potwierd", "aktywuj", "zaloguj", "подтверд", "активир", "войти", "doğrula", "onayla",
    "giriş", "確認", "認証", "ログイン", "验证", "确认", "登录", "인증", "확인", "로그인",
    "xác nhận", "verifikasi", "konfirmasi", "email_confirm", "emailconfirm",
];

/// Link words of lesser value: a reset link is what the owner wants, but less often.
pub const LINK_WEAK_WORDS: &[&str] = &[
    "reset", "password", "passwort", "contraseña", "mot de passe", "senha", "пароль",
];

/// Links that are never verifications: unsubscribe, preferences, legal pages, social.
pub const LINK_DECOYS: &[&str] = &[
    "unsubscribe", "unsub", "opt-out", "optout", "opt_out", "preferences", "preference",
    "privacy", "terms", "legal", "policy", "help", "support", "faq", "contact",
    "view in browser", "view online", "webversion", "web version", "abmelden", "abbestellen",
    "datenschutz", "impressum", "darse de baja", "desuscrib", "cancelar suscripción",
    "désinscri", "désabonner", "disiscriv", "отписат", "abonelikten", "配信停止", "退订",
    "수신거부", "uitschrijven", "wypisz", "report", "not you", "wasn't you", "was not you",
    "didn't request", "secure your account", "apps.apple.com", "play.google.com", "/download",
];
