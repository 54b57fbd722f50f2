import base64, quopri, os

def w(name, text, nl="\r\n", enc=None):
    data = text.replace("\n", nl).encode("latin-1") if enc is None else enc
    open(name, "wb").write(data)

def qp(b):
    return quopri.encodestring(b).decode("ascii")

def b64(b):
    s = base64.b64encode(b).decode()
    return "\n".join(s[i:i+76] for i in range(0, len(s), 76))

H = """From: Alice <alice@example.com>
To: Bob <bob@example.com>
Date: Mon, 2 Nov 2026 10:00:00 +0000
MIME-Version: 1.0
"""

# 1 iso-8859-1 quoted-printable HTML, single part, CRLF
html = "<html><body><p>Gr\u00fc\u00dfe aus K\u00f6ln, caf\u00e9 = 5 \u20ac? no: 5 EUR.</p>\n<p>Zweite Zeile mit sehr langem Text, der weich umbrochen werden muss, weil er l\u00e4nger als sechsundsiebzig Zeichen ist.</p>\n</body></html>\n"
html = html.replace("\u20ac","E")
body = qp(html.encode("iso-8859-1"))
w("latin1-qp.eml", H + "Subject: =?iso-8859-1?q?Gr=FC=DFe?=\nMessage-ID: <latin1-qp@example.com>\nContent-Type: text/html; charset=\"ISO-8859-1\"\nContent-Transfer-Encoding: quoted-printable\n\n" + body.replace("\r\n","\n"))

# 2 windows-1252 8bit HTML inside alternative, LF
html = "<html><body><p>Price: \u20ac5 \u2013 \u201cquoted\u201d</p></body></html>\n"
raw = (H + "Subject: cp1252\nMessage-ID: <cp1252@example.com>\nContent-Type: multipart/alternative; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: 8bit\n\nPrice: \u20ac5\n\n--b1\nContent-Type: text/html;\n charset=windows-1252\nContent-Transfer-Encoding: 8bit\n\n" + html + "\n--b1--\n").encode("cp1252")
w("cp1252-8bit.eml", None, enc=raw)

# 3 iso-2022-jp 7bit HTML, CRLF
html = "<html><body><p>\u3053\u3093\u306b\u3061\u306f\u4e16\u754c</p></body></html>\n"
raw = (H + "Subject: =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=\nMessage-ID: <jis@example.com>\nContent-Type: text/html; charset=iso-2022-jp\nContent-Transfer-Encoding: 7bit\n\n").encode("ascii") + html.encode("iso-2022-jp")
w("iso2022jp-7bit.eml", None, enc=raw.replace(b"\n", b"\r\n"))

# 4 gb2312 base64 HTML, LF
html = "<HTML><BODY><P>\u4f60\u597d\uff0c\u4e16\u754c</P></BODY></HTML>\n"
w("gb2312-base64.eml", H + "Subject: gb\nMessage-ID: <gb@example.com>\nContent-Type: text/html; charset=gb2312\nContent-Transfer-Encoding: base64\n\n" + b64(html.encode("gb2312")) + "\n", nl="\n")

# 5 base64 utf-8 HTML in alternative, CRLF
html = "<!doctype html><html><head><title>t</title></head><body><p>Hello \u2603 snowman</p></body></html>"
w("utf8-base64.eml", None, enc=(H + "Subject: b64\nMessage-ID: <b64@example.com>\nContent-Type: multipart/alternative; boundary=\"=_alt\"\n\nThis is a preamble.\n--=_alt\nContent-Type: text/plain; charset=utf-8\n\nHello snowman\n--=_alt\nContent-Type: text/html; charset=\"utf-8\"\nContent-Transfer-Encoding: base64\n\n" + b64(html.encode()) + "\n--=_alt--\nThis is an epilogue.\n").replace("\n","\r\n").encode())

# 6 8bit HTML with a 1200-octet line, LF
long = "<p>" + ("x" * 1190) + "</p>"
w("long-line-8bit.eml", H + "Subject: long\nMessage-ID: <long@example.com>\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n<html><body>\n" + long + "\n</body></html>\n", nl="\n")

# 7 uppercase </BODY >
w("upper-body.eml", H + "Subject: upper\nMessage-ID: <upper@example.com>\nContent-Type: text/html; charset=us-ascii\n\n<HTML><BODY><P>Hi</P></BODY ></HTML>\n")

# 8 two </body>
w("two-body.eml", H + "Subject: two\nMessage-ID: <two@example.com>\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n<html><body><p>quoted: </body></p>\n<p>real end</p></body></html>\n", nl="\n")

# 9 no </body>
w("no-body-tag.eml", H + "Subject: nobody\nMessage-ID: <nobody@example.com>\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n<p>Just a fragment with a soft =\nbreak</p>\n")

# 10 Bcc folded, Resent-Bcc, X-Pixelrelay-Track yes
w("bcc-folded.eml", "From: Alice <alice@example.com>\nTo: Bob <bob@example.com>\nBcc: carol@example.com,\n dave@example.com,\n\terin@example.com\nSubject: bcc\nX-Pixelrelay-Track: yes\nMessage-ID: <bcc@example.com>\nbcc: lower@example.com\nResent-Bcc: r@example.com\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n<html><body>bcc</body></html>\n")

# 11 X-Pixelrelay-Track: No
w("track-no.eml", H + "Subject: no\nX-Pixelrelay-Track: No\nMessage-ID: <no@example.com>\nContent-Type: text/html; charset=utf-8\n\n<html><body>no</body></html>\n")

# 12 missing Message-ID
w("no-message-id.eml", H + "Subject: noid\nContent-Type: text/html; charset=utf-8\n\n<html><body>noid</body></html>\n", nl="\n")

# 13 HTML attachment untouched
w("html-attachment.eml", H + "Subject: att\nMessage-ID: <att@example.com>\nContent-Type: multipart/mixed; boundary=\"mix\"\n\n--mix\nContent-Type: text/plain; charset=utf-8\n\nSee attached.\n--mix\nContent-Type: text/html; charset=utf-8\nContent-Disposition: attachment; filename=\"page.html\"\n\n<html><body>attached page</body></html>\n--mix\nContent-Type: text/html; name=\"inline.html\"\n\n<html><body>named page</body></html>\n--mix--\n")

# 14 HTML inside attached message/rfc822
w("rfc822-html.eml", H + "Subject: fwd\nMessage-ID: <fwd@example.com>\nContent-Type: multipart/mixed; boundary=\"outer\"\n\n--outer\nContent-Type: text/html; charset=utf-8\n\n<html><body>forwarding</body></html>\n--outer\nContent-Type: message/rfc822\n\nFrom: x@example.com\nSubject: inner\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"inner\"\n\n--inner\nContent-Type: text/html; charset=utf-8\n\n<html><body>inner html</body></html>\n--inner--\n\n--outer--\n", nl="\n")

# 15 nested mixed > alternative > related, CRLF
png = b64(bytes(range(256)))
w("nested.eml", H + "Subject: nested\nMessage-ID: <nested@example.com>\nContent-Type: multipart/mixed; boundary=\"m\"\n\n--m\nContent-Type: multipart/alternative; boundary=\"a\"\n\n--a\nContent-Type: text/plain; charset=utf-8\n\nplain\n--a\nContent-Type: multipart/related; boundary=\"r\"; type=\"text/html\"\n\n--r\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n<html><body><img src=3D\"cid:logo\"></body></html>\n--r\nContent-Type: image/png\nContent-ID: <logo>\nContent-Transfer-Encoding: base64\n\n" + png + "\n--r--\n\n--a--\n\n--m\nContent-Type: application/octet-stream; name=\"a.bin\"\nContent-Disposition: attachment; filename=\"a.bin\"\nContent-Transfer-Encoding: base64\n\n" + png + "\n--m--\n")

# 16 bare-LF latin-1 8-bit text without CTE header (7bit): QP added, charset kept
w("bare-lf-latin1.eml", H + "Subject: lf\nMessage-ID: <lf@example.com>\nContent-Type: text/html; charset=iso-8859-1\n\n<html><body><p>caf\u00e9</p></body></html>\n", nl="\n")

# 17 bench ~50KB alternative
para = "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Caf\u00e9 \u2014 na\u00efve.</p>\n"
htmlb = "<html><head><meta charset=\"utf-8\"></head><body>\n" + para * 235 + "</body></html>\n"
textb = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. Caf\u00e9.\n") * 150
w("bench-50k.eml", None, enc=(H + "Subject: bench\nMessage-ID: <bench@example.com>\nContent-Type: multipart/alternative; boundary=\"bench\"\n\n--bench\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" + qp(textb.encode()).replace("\r\n","\n") + "\n--bench\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" + qp(htmlb.encode()).replace("\r\n","\n") + "\n--bench--\n").replace("\n","\r\n").encode())

# 18 DKIM + signed-like: dkim header on html
w("dkim-html.eml", "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1;\n\th=from:to:subject; bh=abc=; b=def=\n" + H + "Subject: dkim\nBcc: hidden@example.com\nMessage-ID: <dkim@example.com>\nContent-Type: text/html; charset=utf-8\n\n<html><body>signed</body></html>\n")

# 19 missing closing boundary with html
w("missing-close.eml", H + "Subject: broken\nMessage-ID: <broken@example.com>\nContent-Type: multipart/alternative; boundary=\"x\"\n\n--x\nContent-Type: text/html; charset=utf-8\n\n<html><body>broken</body></html>\n", nl="\n")

# 20 mixed line endings inside body, html with empty body part, a boundary-like line in qp
w("qp-dashes.eml", H + "Subject: dashes\nMessage-ID: <dashes@example.com>\nContent-Type: multipart/alternative; boundary=\"zz\"\n\n--zz\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n<html><body>\n=2D-zz\n.\n</body></html>\n--zz\nContent-Type: text/html; charset=utf-8\n\n--zz--\n", nl="\n")

# 21 QP HTML ending in a soft line break at the end of the message, no </body>
w("qp-soft-end.eml", H + "Subject: soft\nMessage-ID: <soft@example.com>\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n<p>ends softly</p>=\n", nl="\n")

# 22 multipart/digest: parts default to message/rfc822, never changed
w("digest.eml", H + "Subject: digest\nMessage-ID: <digest@example.com>\nContent-Type: multipart/digest; boundary=\"d\"\n\n--d\n\nFrom: x@example.com\nContent-Type: text/html\n\n<html><body>digest item</body></html>\n--d--\n")

# 23 Shift_JIS base64 HTML as Gmail sends it, with what a converter chokes
# on: CP932 extensions (NEC 0x8740, IBM 0xFA40), a DoCoMo emoji (0xF89F),
# trail bytes 0x5C, a stray 0x80. Tracked in place: not decoded.
sj = "<html><body><p>".encode("ascii") + "\u8868\u793a\u30bd\u30d5\u30c8".encode("cp932") + b"\x87\x40\xfa\x40\xf8\x9f\x80" + b"</p></body></html>\n"
st = "\u8868\u793a".encode("cp932") + b"\x87\x40\xf8\x9f\n"
w("sjis-cp932-base64.eml", None, enc=(H + "Subject: sjis\nMessage-ID: <sjis@example.com>\nContent-Type: multipart/alternative; boundary=\"000000000000sj\"\n\n--000000000000sj\nContent-Type: text/plain; charset=\"Shift_JIS\"\nContent-Transfer-Encoding: base64\n\n" + b64(st) + "\n--000000000000sj\nContent-Type: text/html; charset=\"Shift_JIS\"\nContent-Transfer-Encoding: base64\n\n" + b64(sj) + "\n--000000000000sj--\n").replace("\n", "\r\n").encode())

# 24 ISO-2022-JP 7bit HTML: JIS X 0201 Roman before the real </body>, and
# after it three kanji whose bytes read "</body" (0x3C2F 0x626F 0x6479).
# The pixel goes before the real </body>, switching to ASCII and back.
jis = b"<html><body><p>" + "\u3053\u3093\u306b\u3061\u306f".encode("iso-2022-jp") + b"</p>\x1b(J<p>yen</p></body>\x1b$B</body\x1b(B</html>\n"
w("iso2022jp-trap.eml", None, enc=(H + "Subject: jis\nMessage-ID: <jis-trap@example.com>\nContent-Type: text/html; charset=ISO-2022-JP\nContent-Transfer-Encoding: 7bit\n\n").encode("ascii").replace(b"\n", b"\r\n") + jis.replace(b"\n", b"\r\n"))

# 25-27 signed or encrypted mail with an HTML part a walker can see: never
# modified (CONTRACT.md item 6). The signatures and ciphertext are dummies.
alt = "Content-Type: multipart/alternative; boundary=\"alt\"\n\n--alt\nContent-Type: text/plain; charset=utf-8\n\nHello\n--alt\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n<html><body><p>Hello</p></body></html>\n--alt--\n"
sig = b64(bytes(range(0, 240)))
w("smime-signed-html.eml", H + "Subject: signed\nMessage-ID: <signed@example.com>\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"sig\"\n\nThis is a cryptographically signed message in MIME format.\n\n--sig\n" + alt + "\n--sig\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"smime.p7s\"\n\n" + sig + "\n\n--sig--\n")
w("pgp-encrypted-html.eml", H + "Subject: encrypted\nMessage-ID: <encrypted@example.com>\nContent-Type: multipart/mixed; boundary=\"mix\"\n\n--mix\nContent-Type: text/html; charset=utf-8\n\n<html><body><p>The message is encrypted.</p></body></html>\n--mix\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"enc\"\n\n--enc\nContent-Type: application/pgp-encrypted\nContent-Description: PGP/MIME version identification\n\nVersion: 1\n\n--enc\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\nContent-Disposition: inline; filename=\"encrypted.asc\"\n\n-----BEGIN PGP MESSAGE-----\n\n" + sig + "\n-----END PGP MESSAGE-----\n\n--enc--\n\n--mix--\n")
w("pkcs7-mime-html.eml", H + "Subject: p7m\nMessage-ID: <p7m@example.com>\nContent-Type: multipart/mixed; boundary=\"mix\"\n\n--mix\n" + alt + "\n--mix\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"smime.p7m\"\n\n" + sig + "\n--mix--\n")
