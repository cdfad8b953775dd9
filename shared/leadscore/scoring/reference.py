"""Reference data for derived fit attributes. A model can extend or replace each list."""

from __future__ import annotations

FREE_EMAIL_DOMAINS: frozenset[str] = frozenset(
    """
    gmail.com googlemail.com yahoo.com yahoo.co.uk yahoo.fr yahoo.de yahoo.co.in yahoo.co.jp ymail.com
    rocketmail.com hotmail.com hotmail.co.uk hotmail.fr hotmail.de hotmail.it outlook.com outlook.fr
    outlook.de live.com live.co.uk live.fr msn.com aol.com icloud.com me.com mac.com proton.me
    protonmail.com pm.me gmx.com gmx.de gmx.net gmx.at web.de t-online.de freenet.de mail.com
    email.com zoho.com zohomail.com yandex.com yandex.ru mail.ru inbox.ru list.ru bk.ru rambler.ru
    qq.com 163.com 126.com sina.com sohu.com naver.com daum.net hanmail.net rediffmail.com
    libero.it virgilio.it tiscali.it orange.fr wanadoo.fr free.fr laposte.net sfr.fr seznam.cz
    wp.pl o2.pl interia.pl onet.pl bol.com.br uol.com.br terra.com.br fastmail.com hey.com tutanota.com
    tuta.io hushmail.com comcast.net verizon.net att.net sbcglobal.net bellsouth.net cox.net
    btinternet.com sky.com virginmedia.com ntlworld.com shaw.ca rogers.com sympatico.ca bigpond.com
    optusnet.com.au
    """.split()
)

DISPOSABLE_EMAIL_DOMAINS: frozenset[str] = frozenset(
    """
    mailinator.com guerrillamail.com guerrillamail.net guerrillamail.org sharklasers.com grr.la
    10minutemail.com 10minutemail.net tempmail.com temp-mail.org temp-mail.io tempmail.net
    throwawaymail.com yopmail.com yopmail.fr yopmail.net getnada.com nada.email dispostable.com
    maildrop.cc mailnesia.com trashmail.com trashmail.de trashmail.net mintemail.com fakeinbox.com
    mailcatch.com spamgourmet.com mohmal.com emailondeck.com burnermail.io mytemp.email tempail.com
    moakt.com tempr.email discard.email spambox.us mailpoof.com inboxkitten.com 33mail.com
    tempinbox.com fakemail.net mail-temp.com emailfake.com crazymailing.com armyspy.com cuvox.de
    dayrep.com einrot.com fleckens.hu gustr.com jourrapide.com rhyta.com superrito.com teleworm.us
    """.split()
)

ROLE_ACCOUNT_PREFIXES: frozenset[str] = frozenset(
    """
    admin administrator info contact sales support help hello office team billing accounts accounting
    marketing noreply no-reply postmaster webmaster hr jobs careers press media enquiries inquiries
    service customerservice feedback abuse security legal finance orders
    """.split()
)

# Ordered from most to least senior; the first level whose pattern matches the job title wins.
SENIORITY_PATTERNS: dict[str, list[str]] = {
    "student_intern": [
        r"\bstudent\b",
        r"\bintern(ship)?\b",
        r"\btrainee\b",
        r"\bapprentice\b",
        r"\bgraduate\b",
    ],
    "c_level": [
        r"\bc[eotfmrsi]o\b",
        r"\bchief\b",
        r"\bfounder\b",
        r"\bco-?founder\b",
        r"\bowner\b",
        r"\bpresident\b",
        r"\bmanaging director\b",
        r"\bpartner\b",
        r"\bgeneral manager\b",
    ],
    "vp": [r"\bvp\b", r"\bvice[- ]president\b", r"\bsvp\b", r"\bevp\b", r"\bhead of\b"],
    "director": [r"\bdirector\b", r"\bdir\.", r"\bprincipal\b"],
    "manager": [r"\bmanager\b", r"\bmgr\b", r"\blead\b", r"\bsupervisor\b", r"\bteam lead\b"],
    "individual": [r"\w"],
}

# ISO 3166 alpha-2 code or common English name -> sales region.
_REGIONS: dict[str, str] = {
    "north_america": "us united_states usa united_states_of_america ca canada mx mexico",
    "latam": "br brazil ar argentina cl chile co colombia pe peru uy uruguay ec ecuador ve venezuela "
    "cr costa_rica pa panama gt guatemala do dominican_republic",
    "emea": "gb uk united_kingdom england scotland wales ie ireland fr france de germany es spain it italy "
    "nl netherlands be belgium lu luxembourg ch switzerland at austria se sweden no norway dk denmark "
    "fi finland is iceland pt portugal pl poland cz czechia czech_republic sk slovakia hu hungary "
    "ro romania bg bulgaria gr greece hr croatia si slovenia rs serbia ee estonia lv latvia "
    "lt lithuania ua ukraine tr turkey il israel ae united_arab_emirates sa saudi_arabia qa qatar "
    "kw kuwait bh bahrain om oman eg egypt za south_africa ng nigeria ke kenya ma morocco gh ghana",
    "apac": "in india cn china jp japan kr south_korea korea sg singapore hk hong_kong tw taiwan "
    "au australia nz new_zealand my malaysia th thailand id indonesia ph philippines vn vietnam "
    "bd bangladesh pk pakistan lk sri_lanka np nepal",
}
COUNTRY_REGIONS: dict[str, str] = {
    name.replace("_", " "): region for region, names in _REGIONS.items() for name in names.split()
}
