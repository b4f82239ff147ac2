#!/usr/bin/env python3
"""Generates the verification-mail corpus (corpus/*.eml + expected.json).

Each mail follows the layout of a kind of real sender (code in the subject, big code in a
table cell, one digit per cell, grouped digits, alphanumeric codes, confirm buttons with a
text fallback, magic sign-in links, bank OTPs next to amounts) in one of many languages,
encoded as real senders do (multipart/alternative, quoted-printable, base64, 8bit,
HTML-only, text-only), with decoy numbers (order numbers and totals, dates, times, phone
numbers, ZIP codes, years, promo codes) and decoy links (unsubscribe, privacy, social,
plain log-in pages). A quarter are not verification mails at all and expect nothing.

Run: python3 gen_corpus.py   (deterministic: fixed seed; rewrites corpus/ and expected.json)
     python3 gen_corpus.py SEED DIR   (another draw of the same layouts into DIR, e.g. a
     held-out set the extractor was not tuned on)
"""
import json
import os
import random
import shutil
import string
import sys
from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timezone, timedelta

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 16
DIR = sys.argv[2] if len(sys.argv) > 2 else HERE
OUT = os.path.join(DIR, "corpus")
R = random.Random(SEED)
random.seed(SEED)  # MIME boundaries come from the global generator

# Phrases per language: subject, intro, label, expiry, ignore, confirm-intro, button,
# sign-in intro, sign-in button, order words.
L = {
 "en": dict(subj="Your verification code", subj_code="{code} is your {brand} verification code",
   intro="Use the code below to verify your email address.", label="Verification code",
   exp="This code expires in 10 minutes.", ign="If you didn't request this, you can safely ignore this email.",
   cintro="Please confirm your email address by clicking the button below.", button="Verify email address",
   sintro="Click the link below to sign in to your account. The link expires in 15 minutes.", sbutton="Sign in to {brand}",
   order="Order", total="Total", thanks="Thanks for your order!", unsub="Unsubscribe", privacy="Privacy Policy",
   pin="Your one-time PIN is", hello="Hi {name},", login_code="Your login code", reset="Reset password",
   reset_intro="We received a request to reset your password.", welcome="Welcome to {brand}!", login="Log in",
   otp_txn="Your OTP for the transaction of {amount} at {shop} is {code}. Do not share it with anyone."),
 "de": dict(subj="Ihr Bestätigungscode", subj_code="{code} ist Ihr {brand}-Bestätigungscode",
   intro="Verwenden Sie den folgenden Code, um Ihre E-Mail-Adresse zu bestätigen.", label="Bestätigungscode",
   exp="Der Code ist 10 Minuten gültig.", ign="Wenn Sie dies nicht angefordert haben, können Sie diese E-Mail ignorieren.",
   cintro="Bitte bestätigen Sie Ihre E-Mail-Adresse mit einem Klick auf die Schaltfläche.", button="E-Mail-Adresse bestätigen",
   sintro="Klicken Sie auf den Link, um sich anzumelden. Der Link ist 15 Minuten gültig.", sbutton="Bei {brand} anmelden",
   order="Bestellung", total="Summe", thanks="Vielen Dank für Ihre Bestellung!", unsub="Abmelden", privacy="Datenschutz",
   pin="Ihre Einmal-PIN lautet", hello="Hallo {name},", login_code="Ihr Anmeldecode", reset="Passwort zurücksetzen",
   reset_intro="Wir haben eine Anfrage zum Zurücksetzen Ihres Passworts erhalten.", welcome="Willkommen bei {brand}!", login="Anmelden",
   otp_txn="Ihr Sicherheitscode für die Zahlung von {amount} bei {shop} lautet {code}. Geben Sie ihn nicht weiter."),
 "es": dict(subj="Tu código de verificación", subj_code="{code} es tu código de {brand}",
   intro="Usa el siguiente código para verificar tu dirección de correo.", label="Código de verificación",
   exp="El código caduca en 10 minutos.", ign="Si no has solicitado esto, ignora este mensaje.",
   cintro="Confirma tu dirección de correo electrónico haciendo clic en el botón.", button="Confirmar correo",
   sintro="Haz clic en el enlace para iniciar sesión. Caduca en 15 minutos.", sbutton="Iniciar sesión en {brand}",
   order="Pedido", total="Total", thanks="¡Gracias por tu pedido!", unsub="Darse de baja", privacy="Política de privacidad",
   pin="Tu PIN de un solo uso es", hello="Hola {name}:", login_code="Tu código de acceso", reset="Restablecer contraseña",
   reset_intro="Hemos recibido una solicitud para restablecer tu contraseña.", welcome="¡Bienvenido a {brand}!", login="Entrar",
   otp_txn="Tu clave para la compra de {amount} en {shop} es {code}. No la compartas."),
 "pt": dict(subj="Seu código de verificação", subj_code="{code} é seu código do {brand}",
   intro="Use o código abaixo para confirmar seu e-mail.", label="Código de verificação",
   exp="O código expira em 10 minutos.", ign="Se você não solicitou, ignore este e-mail.",
   cintro="Confirme seu endereço de e-mail clicando no botão abaixo.", button="Confirmar e-mail",
   sintro="Clique no link abaixo para entrar na sua conta.", sbutton="Entrar no {brand}",
   order="Pedido", total="Total", thanks="Obrigado pela sua compra!", unsub="Cancelar inscrição", privacy="Privacidade",
   pin="Seu PIN de uso único é", hello="Olá, {name}", login_code="Seu código de acesso", reset="Redefinir senha",
   reset_intro="Recebemos um pedido para redefinir sua senha.", welcome="Bem-vindo ao {brand}!", login="Entrar",
   otp_txn="Seu código para a compra de {amount} em {shop} é {code}. Não compartilhe."),
 "fr": dict(subj="Votre code de vérification", subj_code="{code} est votre code {brand}",
   intro="Utilisez le code ci-dessous pour vérifier votre adresse e-mail.", label="Code de vérification",
   exp="Ce code expire dans 10 minutes.", ign="Si vous n'êtes pas à l'origine de cette demande, ignorez cet e-mail.",
   cintro="Veuillez confirmer votre adresse e-mail en cliquant sur le bouton ci-dessous.", button="Confirmer mon adresse",
   sintro="Cliquez sur le lien ci-dessous pour vous connecter.", sbutton="Se connecter à {brand}",
   order="Commande", total="Total", thanks="Merci pour votre commande !", unsub="Se désabonner", privacy="Confidentialité",
   pin="Votre code PIN à usage unique est", hello="Bonjour {name},", login_code="Votre code de connexion", reset="Réinitialiser le mot de passe",
   reset_intro="Nous avons reçu une demande de réinitialisation de votre mot de passe.", welcome="Bienvenue sur {brand} !", login="Connexion",
   otp_txn="Votre code pour le paiement de {amount} chez {shop} est {code}. Ne le communiquez à personne."),
 "it": dict(subj="Il tuo codice di verifica", subj_code="{code} è il tuo codice {brand}",
   intro="Usa il codice qui sotto per verificare il tuo indirizzo email.", label="Codice di verifica",
   exp="Il codice scade tra 10 minuti.", ign="Se non hai richiesto questo codice, ignora questa email.",
   cintro="Conferma il tuo indirizzo email facendo clic sul pulsante.", button="Conferma email",
   sintro="Fai clic sul link per accedere al tuo account.", sbutton="Accedi a {brand}",
   order="Ordine", total="Totale", thanks="Grazie per il tuo ordine!", unsub="Annulla iscrizione", privacy="Privacy",
   pin="Il tuo PIN monouso è", hello="Ciao {name},", login_code="Il tuo codice di accesso", reset="Reimposta password",
   reset_intro="Abbiamo ricevuto una richiesta di reimpostazione della password.", welcome="Benvenuto su {brand}!", login="Accedi",
   otp_txn="Il codice per il pagamento di {amount} presso {shop} è {code}. Non condividerlo."),
 "ru": dict(subj="Код подтверждения", subj_code="{code} — ваш код {brand}",
   intro="Введите этот код, чтобы подтвердить адрес электронной почты.", label="Код подтверждения",
   exp="Код действует 10 минут.", ign="Если вы не запрашивали код, просто проигнорируйте это письмо.",
   cintro="Подтвердите адрес электронной почты, нажав на кнопку ниже.", button="Подтвердить почту",
   sintro="Нажмите на ссылку, чтобы войти в аккаунт.", sbutton="Войти в {brand}",
   order="Заказ", total="Сумма", thanks="Спасибо за заказ!", unsub="Отписаться", privacy="Конфиденциальность",
   pin="Ваш одноразовый PIN-код:", hello="Здравствуйте, {name}!", login_code="Код для входа", reset="Сбросить пароль",
   reset_intro="Мы получили запрос на сброс пароля.", welcome="Добро пожаловать в {brand}!", login="Войти",
   otp_txn="Код для оплаты {amount} в {shop}: {code}. Никому его не сообщайте."),
 "pl": dict(subj="Twój kod weryfikacyjny", subj_code="{code} to Twój kod {brand}",
   intro="Użyj poniższego kodu, aby zweryfikować adres e-mail.", label="Kod weryfikacyjny",
   exp="Kod wygasa za 10 minut.", ign="Jeśli to nie Ty, zignoruj tę wiadomość.",
   cintro="Potwierdź swój adres e-mail, klikając przycisk poniżej.", button="Potwierdź adres e-mail",
   sintro="Kliknij link, aby się zalogować.", sbutton="Zaloguj się do {brand}",
   order="Zamówienie", total="Razem", thanks="Dziękujemy za zamówienie!", unsub="Wypisz się", privacy="Prywatność",
   pin="Twój jednorazowy PIN to", hello="Cześć {name},", login_code="Twój kod logowania", reset="Zresetuj hasło",
   reset_intro="Otrzymaliśmy prośbę o zresetowanie hasła.", welcome="Witaj w {brand}!", login="Zaloguj",
   otp_txn="Kod do płatności {amount} w {shop}: {code}. Nie udostępniaj go nikomu."),
 "nl": dict(subj="Je verificatiecode", subj_code="{code} is je {brand}-code",
   intro="Gebruik de onderstaande code om je e-mailadres te verifiëren.", label="Verificatiecode",
   exp="De code verloopt over 10 minuten.", ign="Heb je dit niet aangevraagd? Negeer dan deze e-mail.",
   cintro="Bevestig je e-mailadres door op de knop hieronder te klikken.", button="E-mailadres bevestigen",
   sintro="Klik op de link om in te loggen.", sbutton="Inloggen bij {brand}",
   order="Bestelling", total="Totaal", thanks="Bedankt voor je bestelling!", unsub="Uitschrijven", privacy="Privacy",
   pin="Je eenmalige pincode is", hello="Hoi {name},", login_code="Je inlogcode", reset="Wachtwoord opnieuw instellen",
   reset_intro="We hebben een verzoek ontvangen om je wachtwoord te wijzigen.", welcome="Welkom bij {brand}!", login="Inloggen",
   otp_txn="Je code voor de betaling van {amount} bij {shop} is {code}. Deel deze niet."),
 "tr": dict(subj="Doğrulama kodunuz", subj_code="{code} {brand} doğrulama kodunuzdur",
   intro="E-posta adresinizi doğrulamak için aşağıdaki kodu kullanın.", label="Doğrulama kodu",
   exp="Kod 10 dakika geçerlidir.", ign="Bu isteği siz yapmadıysanız bu e-postayı dikkate almayın.",
   cintro="E-posta adresinizi onaylamak için aşağıdaki düğmeye tıklayın.", button="E-postayı doğrula",
   sintro="Hesabınıza giriş yapmak için bağlantıya tıklayın.", sbutton="{brand} hesabına giriş yap",
   order="Sipariş", total="Toplam", thanks="Siparişiniz için teşekkürler!", unsub="Abonelikten çık", privacy="Gizlilik",
   pin="Tek kullanımlık PIN kodunuz", hello="Merhaba {name},", login_code="Giriş kodunuz", reset="Şifreyi sıfırla",
   reset_intro="Şifrenizi sıfırlama isteği aldık.", welcome="{brand}'e hoş geldiniz!", login="Giriş yap",
   otp_txn="{shop} üzerinden {amount} tutarındaki işlem için şifreniz {code}. Kimseyle paylaşmayın."),
 "ja": dict(subj="認証コードのお知らせ", subj_code="{brand} 認証コード: {code}",
   intro="以下の認証コードを入力して、メールアドレスを確認してください。", label="認証コード",
   exp="このコードの有効期限は10分です。", ign="お心当たりのない場合は、このメールを破棄してください。",
   cintro="下のボタンをクリックしてメールアドレスを確認してください。", button="メールアドレスを確認する",
   sintro="下のリンクをクリックしてログインしてください。", sbutton="{brand}にログイン",
   order="ご注文番号", total="合計", thanks="ご注文ありがとうございます。", unsub="配信停止", privacy="プライバシーポリシー",
   pin="ワンタイムパスワード：", hello="{name} 様", login_code="ログインコード", reset="パスワードを再設定",
   reset_intro="パスワード再設定のリクエストを受け付けました。", welcome="{brand}へようこそ！", login="ログイン",
   otp_txn="{shop}での{amount}のお支払いのワンタイムパスワードは{code}です。"),
 "zh": dict(subj="您的验证码", subj_code="【{brand}】验证码 {code}",
   intro="请使用以下验证码完成邮箱验证。", label="验证码",
   exp="验证码10分钟内有效。", ign="如果这不是您本人的操作，请忽略此邮件。",
   cintro="请点击下方按钮确认您的邮箱地址。", button="确认邮箱",
   sintro="点击下方链接登录您的账户。", sbutton="登录{brand}",
   order="订单号", total="合计", thanks="感谢您的订购！", unsub="退订", privacy="隐私政策",
   pin="您的动态码为", hello="{name}，您好：", login_code="登录验证码", reset="重置密码",
   reset_intro="我们收到了重置密码的请求。", welcome="欢迎加入{brand}！", login="登录",
   otp_txn="您在{shop}支付{amount}的验证码为{code}，请勿泄露。"),
 "ko": dict(subj="인증 코드 안내", subj_code="[{brand}] 인증번호 {code}",
   intro="아래 인증 코드를 입력하여 이메일 주소를 확인하세요.", label="인증 코드",
   exp="이 코드는 10분간 유효합니다.", ign="요청하지 않으셨다면 이 이메일을 무시하세요.",
   cintro="아래 버튼을 눌러 이메일 주소를 확인해 주세요.", button="이메일 인증하기",
   sintro="아래 링크를 눌러 로그인하세요.", sbutton="{brand} 로그인",
   order="주문번호", total="합계", thanks="주문해 주셔서 감사합니다.", unsub="수신거부", privacy="개인정보처리방침",
   pin="일회용 PIN:", hello="{name}님, 안녕하세요.", login_code="로그인 코드", reset="비밀번호 재설정",
   reset_intro="비밀번호 재설정 요청을 받았습니다.", welcome="{brand}에 오신 것을 환영합니다!", login="로그인",
   otp_txn="{shop}에서 {amount} 결제 인증번호는 {code}입니다."),
 "id": dict(subj="Kode verifikasi Anda", subj_code="{code} adalah kode {brand} Anda",
   intro="Gunakan kode di bawah ini untuk memverifikasi email Anda.", label="Kode verifikasi",
   exp="Kode berlaku selama 10 menit.", ign="Jika Anda tidak meminta ini, abaikan email ini.",
   cintro="Konfirmasi alamat email Anda dengan mengklik tombol di bawah.", button="Verifikasi email",
   sintro="Klik tautan di bawah untuk masuk.", sbutton="Masuk ke {brand}",
   order="Pesanan", total="Total", thanks="Terima kasih atas pesanan Anda!", unsub="Berhenti berlangganan", privacy="Privasi",
   pin="PIN sekali pakai Anda adalah", hello="Halo {name},", login_code="Kode masuk Anda", reset="Atur ulang kata sandi",
   reset_intro="Kami menerima permintaan untuk mengatur ulang kata sandi Anda.", welcome="Selamat datang di {brand}!", login="Masuk",
   otp_txn="Kode OTP untuk transaksi {amount} di {shop} adalah {code}. Jangan berikan kepada siapa pun."),
}
LANGS = list(L)
BRANDS = [("GitHub", "github.com"), ("Discord", "discord.com"), ("Slack", "slack.com"), ("Notion", "notion.so"),
          ("Steam", "steampowered.com"), ("Epic Games", "epicgames.com"), ("Instagram", "instagram.com"),
          ("TikTok", "tiktok.com"), ("Binance", "binance.com"), ("Coinbase", "coinbase.com"), ("Uber", "uber.com"),
          ("Airbnb", "airbnb.com"), ("Netflix", "netflix.com"), ("Spotify", "spotify.com"), ("Zoom", "zoom.us"),
          ("Dropbox", "dropbox.com"), ("Reddit", "reddit.com"), ("Twitch", "twitch.tv"), ("Roblox", "roblox.com"),
          ("Shopify", "shopify.com"), ("Stripe", "stripe.com"), ("Canva", "canva.com"), ("Figma", "figma.com"),
          ("Linear", "linear.app"), ("Vercel", "vercel.com"), ("OpenAI", "openai.com"), ("Medium", "medium.com"),
          ("Yandex", "yandex.ru"), ("Mail.ru", "mail.ru"), ("Rakuten", "rakuten.co.jp"), ("LINE", "line.me"),
          ("Taobao", "taobao.com"), ("Naver", "naver.com"), ("Tokopedia", "tokopedia.com"), ("Allegro", "allegro.pl"),
          ("Bol.com", "bol.com"), ("Trendyol", "trendyol.com"), ("Mercado Livre", "mercadolivre.com.br"),
          ("Zalando", "zalando.de"), ("Leboncoin", "leboncoin.fr")]
NAMES = ["Alex", "Maria", "Jonas", "Lucía", "Yuki", "Wei", "Min-jun", "Ayşe", "Piotr", "Sanne", "Dmitri", "Chloé"]
SHOPS = ["AMAZON EU", "ALIEXPRESS", "BOOKING.COM", "APPLE.COM/BILL", "STEAM PURCHASE", "ZALANDO SE"]


def token(n=32):
    return "".join(R.choice(string.ascii_letters + string.digits) for _ in range(n - 2)) + R.choice("abc") + R.choice("123")


def digits(n):
    return str(R.randint(1, 9)) + "".join(R.choice(string.digits) for _ in range(n - 1))


def alnum(n):
    alphabet = "23456789BCDFGHJKMNPQRTVWXY"
    while True:
        s = "".join(R.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in s) and any(c.isalpha() for c in s):
            return s


def amount(lang):
    v = f"{R.randint(5, 2400)}.{R.randint(0, 99):02d}"
    if lang in ("de", "es", "fr", "it", "pt", "nl", "pl", "tr", "id"):
        v = v.replace(".", ",")
        return R.choice([f"{v} €", f"EUR {v}", f"{v}€"])
    if lang == "ru":
        return f"{v.replace('.', ',')} ₽"
    if lang in ("ja", "zh"):
        return R.choice([f"¥{R.randint(500, 99999):,}", f"{R.randint(500, 99999)}円" if lang == "ja" else f"¥{R.randint(50, 9999)}.00"])
    if lang == "ko":
        return f"{R.randint(1000, 990000):,}원"
    return R.choice([f"${v}", f"USD {v}", f"£{v}"])


def date_str():
    d = datetime(2026, R.randint(1, 12), R.randint(1, 28), R.randint(0, 23), R.randint(0, 59), tzinfo=timezone.utc)
    return R.choice([d.strftime("%d/%m/%Y %H:%M"), d.strftime("%B %d, %Y at %I:%M %p"), d.strftime("%Y-%m-%d %H:%M UTC"),
                     d.strftime("%d.%m.%Y, %H:%M"), d.strftime("%a, %d %b %Y")])


def phone():
    return R.choice([f"+1 (800) {digits(3)}-{digits(4)}", f"+49 30 {digits(4)} {digits(4)}", f"1-800-{digits(3)}-{digits(4)}",
                     f"+44 20 {digits(4)} {digits(4)}", f"0800 {digits(3)} {digits(4)}", f"+7 495 {digits(3)}-{digits(2)}-{digits(2)}"])


def footer_html(lang, domain, brand):
    p = L[lang]
    zipc = digits(5)
    return (f'<table width="100%" style="font-size:11px;color:#888"><tr><td>'
            f'© {R.choice([2024, 2025, 2026])} {brand}, {R.randint(1, 999)} Market Street, San Francisco, CA {zipc}<br>'
            f'{R.choice(["Support", "Hilfe", "Ayuda", "Support"])}: {phone()}<br>'
            f'<a href="https://{domain}/legal/privacy">{p["privacy"]}</a> &middot; '
            f'<a href="https://email.{domain}/unsubscribe?u={token(40)}&amp;list={digits(6)}">{p["unsub"]}</a> &middot; '
            f'<a href="https://twitter.com/{brand.replace(" ", "")}"><img src="https://{domain}/img/x.png" alt="X"></a>'
            f'</td></tr></table>')


def footer_text(lang, domain, brand):
    p = L[lang]
    return (f"\n\n--\n© {R.choice([2025, 2026])} {brand}, {R.randint(1, 999)} Market Street, CA {digits(5)}\n"
            f"{p['privacy']}: https://{domain}/legal/privacy\n{p['unsub']}: https://email.{domain}/unsubscribe?u={token(40)}\n")


def wrap_html(inner, lang, domain, brand, preheader=""):
    pre = f'<div style="display:none;max-height:0;overflow:hidden">{preheader}&zwnj;&nbsp;&zwnj;&nbsp;</div>' if preheader else ""
    return (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{brand}</title>'
            f'<style>.btn{{background:#2da44e;color:#fff}} td{{font-family:Helvetica,Arial}} @media (max-width:600px){{.c{{width:100%}}}}</style>'
            f'</head><body style="margin:0;background:#f6f8fa">{pre}<center><table class="c" width="600" cellpadding="0" cellspacing="0" role="presentation">'
            f'<tr><td style="padding:24px"><img src="https://{domain}/logo.png" alt="{brand}" width="120"></td></tr>'
            f'<tr><td style="padding:0 24px">{inner}</td></tr><tr><td>{footer_html(lang, domain, brand)}</td></tr>'
            f'</table></center></body></html>')


def button(url, label):
    return (f'<table role="presentation" cellspacing="0" cellpadding="0"><tr><td class="btn" style="border-radius:6px">'
            f'<a href="{url.replace("&", "&amp;")}" target="_blank" style="display:inline-block;padding:12px 24px;color:#fff">{label}</a>'
            f'</td></tr></table>')


# --- layouts: each returns (subject, text or None, html or None, code or None, link or None)

def l_code_block(lang, brand, domain):
    p = L[lang]
    code = digits(R.choice([6, 6, 6, 4, 5, 8]))
    name = R.choice(NAMES)
    html = wrap_html(f'<p>{p["hello"].format(name=name)}</p><p>{p["intro"]}</p>'
                     f'<table><tr><td style="font-size:32px;letter-spacing:8px;font-weight:bold;padding:16px;background:#eee">{code}</td></tr></table>'
                     f'<p>{p["exp"]}</p><p style="color:#777">{p["ign"]}</p>', lang, domain, brand, p["intro"])
    text = (f'{p["hello"].format(name=name)}\n\n{p["intro"]}\n\n    {code}\n\n{p["exp"]}\n{p["ign"]}' + footer_text(lang, domain, brand))
    return p["subj"], text, html, code, None


def l_code_subject(lang, brand, domain):
    p = L[lang]
    code = digits(6)
    html = wrap_html(f'<p>{p["hello"].format(name=R.choice(NAMES))}</p><p>{p["intro"]}</p>'
                     f'<p style="font-size:24px"><strong>{code}</strong></p><p>{p["exp"]}</p>', lang, domain, brand)
    return p["subj_code"].format(code=code, brand=brand), None, html, code, None


def l_digit_boxes(lang, brand, domain):
    p = L[lang]
    code = digits(R.choice([4, 6, 6]))
    cells = "".join(f'<td style="border:1px solid #ccc;width:40px;height:48px;text-align:center;font-size:28px">{c}</td><td width="8"></td>' for c in code)
    html = wrap_html(f'<h1 style="font-size:20px">{p["label"]}</h1><p>{p["intro"]}</p>'
                     f'<table role="presentation"><tr>{cells}</tr></table><p>{p["exp"]}</p><p>{p["ign"]}</p>', lang, domain, brand)
    return p["subj"], None, html, code, None


def l_grouped(lang, brand, domain):
    p = L[lang]
    n = R.choice([6, 6, 8])
    code = digits(n)
    sep = R.choice([" ", "-", " "])
    shown = code[: n // 2] + sep + code[n // 2:]
    if R.random() < 0.3:
        shown = " ".join(code)
    text = f'{p["hello"].format(name=R.choice(NAMES))}\n\n{p["label"]}:\n\n{shown}\n\n{p["exp"]}\n{p["ign"]}' + footer_text(lang, domain, brand)
    html = wrap_html(f'<p>{p["label"]}:</p><p style="font-size:30px;font-family:monospace">{shown}</p><p>{p["exp"]}</p>', lang, domain, brand)
    return p["login_code"], text, (html if R.random() < 0.6 else None), code, None


def l_alnum(lang, brand, domain):
    p = L[lang]
    kind = R.choice(["steam", "dash", "plain"])
    if kind == "steam":
        code = alnum(5)
    elif kind == "dash":
        code = alnum(3) + "-" + alnum(3)
    else:
        code = alnum(R.choice([6, 8]))
    html = wrap_html(f'<p>{p["hello"].format(name=R.choice(NAMES))}</p><p>{p["login_code"]}:</p>'
                     f'<div style="font-size:28px;font-family:Courier New;color:#1a9fff">{code}</div>'
                     f'<p>{p["exp"]}</p><p>{p["ign"]}</p>', lang, domain, brand)
    text = f'{p["login_code"]}: {code}\n\n{p["exp"]}\n{p["ign"]}' + footer_text(lang, domain, brand)
    return p["login_code"], text, html, code, None


def l_confirm_link(lang, brand, domain):
    p = L[lang]
    style = R.choice(["path", "query", "tracked"])
    t = token(R.choice([32, 40, 64]))
    if style == "path":
        url = f"https://{domain}/{R.choice(['verify', 'confirm', 'account/verify-email', 'users/confirm_email', 'activate'])}/{t}"
    elif style == "query":
        url = f"https://{R.choice(['accounts.', 'auth.', 'www.'])}{domain}/{R.choice(['email/verify', 'confirm', 'verification', 'activation'])}?token={t}&uid={digits(7)}"
    else:
        url = f"https://click.mail.{domain}/ls/click?upn={t}-2FLx{token(20)}"
    html = wrap_html(f'<p>{p["hello"].format(name=R.choice(NAMES))}</p><p>{p["cintro"]}</p>{button(url, p["button"])}'
                     f'<p style="font-size:12px">{url.replace("&", "&amp;")}</p><p>{p["ign"]}</p>', lang, domain, brand)
    text = f'{p["cintro"]}\n\n{p["button"]}:\n{url}\n\n{p["ign"]}' + footer_text(lang, domain, brand)
    return p["welcome"].format(brand=brand), (text if R.random() < 0.7 else None), html, None, url


def l_magic(lang, brand, domain):
    p = L[lang]
    t = token(48)
    url = f"https://{domain}/{R.choice(['auth/magic-link', 'login/magic', 'm/callback', 'signin/email', 'loginwithemail'])}?token={t}&email={R.choice(NAMES).lower()}%40tempmx.test"
    both = R.random() < 0.4
    code = digits(6) if both else None
    extra = f'<p>{p["label"]}: <b>{code}</b></p>' if both else ""
    html = wrap_html(f'<p>{p["sintro"]}</p>{button(url, p["sbutton"].format(brand=brand))}{extra}<p>{p["ign"]}</p>', lang, domain, brand)
    text = f'{p["sintro"]}\n\n{url}\n' + (f'\n{p["label"]}: {code}\n' if both else "") + f'\n{p["ign"]}' + footer_text(lang, domain, brand)
    return p["sbutton"].format(brand=brand), text, html, code, url


def l_code_and_decoys(lang, brand, domain):
    p = L[lang]
    code = digits(R.choice([6, 6, 4, 8]))
    ip = f"203.0.{R.randint(0, 255)}.{R.randint(1, 254)}"
    html = wrap_html(f'<p>{p["hello"].format(name=R.choice(NAMES))}</p><p>{p["intro"]}</p>'
                     f'<p style="font-size:26px;font-weight:700">{code}</p>'
                     f'<table style="font-size:12px;color:#555"><tr><td>{date_str()}</td></tr><tr><td>IP: {ip}</td></tr>'
                     f'<tr><td>Chrome 131 · Windows 11</td></tr></table><p>{p["exp"]}</p>', lang, domain, brand)
    text = f'{p["intro"]}\n\n{code}\n\n{date_str()}\nIP: {ip}\nChrome 131 / Windows 11\n{p["exp"]}' + footer_text(lang, domain, brand)
    return p["subj"], text, html, code, None


def l_bank_otp(lang, brand, domain):
    p = L[lang]
    code = digits(R.choice([6, 8]))
    line = p["otp_txn"].format(amount=amount(lang), shop=R.choice(SHOPS), code=code)
    card = f"**** {digits(4)}"
    text = f'{line}\n\nCard {card}\n{date_str()}\n{phone()}'
    html = None
    if R.random() < 0.5:
        html = wrap_html(f'<p>{line}</p><p>Card {card}<br>{date_str()}</p>', lang, domain, brand)
    return "OTP", text, html, code, None


def l_plain_pin(lang, brand, domain):
    p = L[lang]
    code = digits(R.choice([4, 6]))
    text = f'{p["hello"].format(name=R.choice(NAMES))}\n\n{p["pin"]} {code}\n\n{p["exp"]}\n{p["ign"]}\n\n{brand}\n{phone()}\n'
    return p["subj"], text, None, code, None


# --- mails that are not verifications

def n_order(lang, brand, domain):
    p = L[lang]
    order_no = R.choice([digits(6), digits(8), f"{digits(3)}-{digits(7)}-{digits(7)}"])
    rows = "".join(f'<tr><td>{R.choice(["T-Shirt", "Sneakers", "USB-C cable", "Mug"])} x{R.randint(1, 3)}</td><td align="right">{amount(lang)}</td></tr>' for _ in range(R.randint(1, 4)))
    html = wrap_html(f'<h2>{p["thanks"]}</h2><p>{p["order"]} #{order_no} · {date_str()}</p><table width="100%">{rows}'
                     f'<tr><td><b>{p["total"]}</b></td><td align="right"><b>{amount(lang)}</b></td></tr></table>'
                     f'<p>Tracking: 1Z{alnum(6)}{digits(10)}</p>'
                     f'{button(f"https://{domain}/orders/{order_no}", p["order"] + " " + order_no)}', lang, domain, brand)
    text = f'{p["thanks"]}\n{p["order"]} #{order_no}\n{p["total"]}: {amount(lang)}\n{date_str()}\n' + footer_text(lang, domain, brand)
    return f'{p["order"]} #{order_no}', text, html, None, None


def n_newsletter(lang, brand, domain):
    p = L[lang]
    promo = R.choice(["SAVE20", "BLACKFRIDAY25", "WELCOME10", "XMAS2026"])
    html = wrap_html(f'<h1>{R.choice(["New arrivals", "Neuheiten", "Novedades", "Nouveautés", "Новинки"])}</h1>'
                     f'<p>{amount(lang)} → {amount(lang)}</p><p>Promo: <b>{promo}</b> -20%</p>'
                     f'<p>{date_str()}</p>{button(f"https://{domain}/sale?utm_source=newsletter&utm_campaign={digits(6)}", "Shop now")}'
                     f'<p><a href="https://{domain}/login">{p["login"]}</a></p>', lang, domain, brand)
    return f'{brand}: -20% {R.choice(["this weekend", "nur heute", "hoy"])}', None, html, None, None


def n_shipping(lang, brand, domain):
    p = L[lang]
    track = R.choice([f"1Z{alnum(6)}{digits(10)}", digits(12), f"JD{digits(18)}"])
    text = (f'{p["hello"].format(name=R.choice(NAMES))}\n\n{p["order"]} {digits(7)}\nTracking: {track}\n'
            f'{R.randint(1, 999)} Main St, Springfield, IL {digits(5)}\n{date_str()}\n{phone()}\n'
            f'https://{domain}/track/{track}\n' + footer_text(lang, domain, brand))
    return f'{p["order"]} {digits(7)}', text, None, None, None


def n_security_notice(lang, brand, domain):
    p = L[lang]
    ip = f"198.51.{R.randint(0, 255)}.{R.randint(1, 254)}"
    html = wrap_html(f'<p>{p["hello"].format(name=R.choice(NAMES))}</p><p>New sign-in · {date_str()} · IP {ip} · Firefox 133</p>'
                     f'<p>{p["ign"]}</p>{button(f"https://{domain}/security/review?e={token(24)}", "Secure your account")}'
                     f'<p><a href="https://{domain}/settings/security">{p["login"]}</a></p>', lang, domain, brand)
    return f'{brand}: new sign-in', None, html, None, None


def n_welcome(lang, brand, domain):
    p = L[lang]
    html = wrap_html(f'<h1>{p["welcome"].format(brand=brand)}</h1><p>{p["hello"].format(name=R.choice(NAMES))}</p>'
                     f'<p>{R.randint(3, 40)} million people use {brand} since {R.randint(2008, 2020)}.</p>'
                     f'{button(f"https://{domain}/login", p["login"])}<p><a href="https://{domain}/help">Help center</a></p>', lang, domain, brand)
    text = f'{p["welcome"].format(brand=brand)}\n\n{p["login"]}: https://{domain}/login\n' + footer_text(lang, domain, brand)
    return p["welcome"].format(brand=brand), text, html, None, None


def n_event(lang, brand, domain):
    p = L[lang]
    html = wrap_html(f'<h2>Webinar</h2><p>{date_str()} – {R.randint(1, 12)}:{R.choice(["00", "30"])}</p>'
                     f'<p>Meeting ID: {digits(3)} {digits(4)} {digits(4)}</p><p>Dial-in: {phone()}</p>'
                     f'<p><a href="https://{domain}/j/{digits(11)}?pwd={token(24)}">Join</a></p>', lang, domain, brand)
    return f'Reminder: webinar {date_str()}', None, html, None, None


CODE_LAYOUTS = [l_code_block, l_code_subject, l_digit_boxes, l_grouped, l_alnum, l_code_and_decoys, l_bank_otp, l_plain_pin]
LINK_LAYOUTS = [l_confirm_link, l_magic]
NONE_LAYOUTS = [n_order, n_newsletter, n_shipping, n_security_notice, n_welcome, n_event]


def build(subject, text, html, lang, brand, domain, n):
    m = EmailMessage()
    m["From"] = f'"{brand}" <{R.choice(["noreply", "no-reply", "security", "account", "hello"])}@{domain}>'
    m["To"] = f"user{n}@tempmx.test"
    m["Subject"] = subject
    m["Date"] = format_datetime(datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc) + timedelta(minutes=n))
    m["Message-ID"] = f"<{digits(12)}.{n}@{domain}>"
    cte_text = R.choice(["quoted-printable", "base64", "8bit", "quoted-printable"])
    cte_html = R.choice(["quoted-printable", "base64", "quoted-printable"])
    if text is not None and html is not None:
        m.set_content(text, cte=cte_text)
        m.add_alternative(html, subtype="html", cte=cte_html)
    elif html is not None:
        m.set_content(html, subtype="html", cte=cte_html)
    else:
        m.set_content(text or "", cte=cte_text)
    if R.random() < 0.08:
        m.add_attachment(b"%PDF-1.4 invoice " + digits(8).encode(), maintype="application", subtype="pdf", filename="invoice.pdf")
    return m.as_bytes(policy=m.policy.clone(linesep="\r\n"))


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    expected = {}
    plan = []
    for i in range(140):
        plan.append(CODE_LAYOUTS[i % len(CODE_LAYOUTS)])
    for i in range(40):
        plan.append(LINK_LAYOUTS[i % len(LINK_LAYOUTS)])
    for i in range(60):
        plan.append(NONE_LAYOUTS[i % len(NONE_LAYOUTS)])
    for n, layout in enumerate(plan):
        lang = LANGS[(n * 7 + n // len(LANGS)) % len(LANGS)]
        brand, domain = BRANDS[R.randrange(len(BRANDS))]
        subject, text, html, code, link = layout(lang, brand, domain)
        raw = build(subject, text, html, lang, brand, domain, n)
        name = f"{n:03d}-{layout.__name__}-{lang}.eml"
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(raw)
        expected[name] = {"code": code, "link": link}
    with open(os.path.join(DIR, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    print(f"{len(plan)} mails in {OUT}")


if __name__ == "__main__":
    main()
