"""Lip-sync speech in other languages: held-out espeak-ng voices with exact phone timings (issue 24).

Two groups, both never heard in training (``make default-model`` trains on espeak-ng's en, de, fr, es, it, pt,
nl, pl and cmn voices with the variants m1-m7 and f1-f4, and festival, flite and piper English):

* languages the corpus has, spoken with the held-out variant ``f5`` (a new voice, a known language);
* languages the corpus never had (sv, ru, cs, fi, tr, hu), also with ``f5``.

The sentences were written for facecast, rich in bilabials and in open and rounded vowels, two per clip.
espeak-ng's IPA phonemes become CMU phones by :func:`ipa_to_cmu_multilingual`: the English table first, then
symbol by symbol (front rounded vowels as rounded vowels of the same height, uvular and trilled r as R, the
bilabial approximant as V so it does not count as a lip closure, palatals and fricatives by place).
"""

from __future__ import annotations

import unicodedata

from facecast.evaluation.corpus import Utterance
from facecast.evaluation.espeak import IPA_TO_CMU
from facecast.evaluation.phones import NOISE

HELD_OUT_VARIANT = "f5"
TRAINED_LANGUAGES = ("de", "fr", "es", "it", "pt", "nl", "pl")
UNSEEN_LANGUAGES = ("sv", "ru", "cs", "fi", "tr", "hu")
LANGUAGE_NAMES = {
    "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese", "nl": "Dutch",
    "pl": "Polish", "sv": "Swedish", "ru": "Russian", "cs": "Czech", "fi": "Finnish", "tr": "Turkish",
    "hu": "Hungarian",
}  # fmt: skip

SENTENCES: dict[str, tuple[str, ...]] = {
    "de": ("Papa baut ein Boot am Bach. Die Mama bringt Obst und Brot mit.",
           "Bitte pack die Bücher in den blauen Koffer. Wir fahren morgen um acht.",
           "Am Abend malt Paul ein Bild vom Meer. Die Sonne ist warm und rot.",
           "Mein Bruder kommt mit dem Bus. Er bleibt bis zum Montag bei uns."),
    "fr": ("Papa boit un bon café. Maman met le pain sur la table.",
           "Le petit bateau bleu passe sous le pont. Il fait beau ce matin.",
           "Pierre aime beaucoup la musique. Nous partons au bord de la mer.",
           "Bonjour, mon ami, comment vas-tu? Le marché ouvre à huit heures."),
    "es": ("Mamá compra pan y manzanas. Pablo bebe un vaso de agua.",
           "El barco blanco para en el puerto. Mañana vamos a la playa.",
           "Mi padre abre la puerta de la casa. El perro duerme bajo la mesa.",
           "Pon el mapa sobre la mesa, por favor. Bailamos hasta muy tarde."),
    "it": ("Mamma compra il pane e la frutta. Paolo beve un bicchiere d'acqua.",
           "La barca blu parte dal porto. Domani andiamo al mare.",
           "Il bambino mangia una mela rossa. Poi gioca con la palla nel prato.",
           "Per favore, metti il libro sul tavolo. Abbiamo poco tempo."),
    "pt": ("A mamãe compra pão e maçãs. O Paulo bebe um copo de água.",
           "O barco branco parte do porto. Amanhã vamos para a praia.",
           "O meu pai abre a porta da casa. O cão dorme embaixo da mesa.",
           "Ponha o mapa sobre a mesa, por favor. Nós dançamos até tarde."),
    "nl": ("Papa bakt een brood met boter. Mama brengt appels mee.",
           "De blauwe boot vaart onder de brug. Morgen gaan we naar het strand.",
           "Mijn broer pakt de bal op. Hij speelt buiten in de warme zon.",
           "Breng de boeken maar naar boven. Wij blijven tot maandag hier."),
    "pl": ("Mama kupuje chleb i mleko. Paweł pije kubek wody.",
           "Biała łódka płynie pod mostem. Jutro pojedziemy nad morze.",
           "Mój brat bawi się piłką w ogrodzie. Potem pomaga mamie.",
           "Proszę, połóż mapę na biurku. Mamy mało czasu."),
    "sv": ("Pappa bakar bröd med mamma. Barnen bor i ett stort blått hus.",
           "Båten paddlar mot bryggan. I morgon badar vi i havet.",
           "Min bror målar en bild av parken. Solen är varm och stark.",
           "Packa böckerna i boxen, är du snäll. Vi åker buss på måndag."),
    "ru": ("Папа покупает белый хлеб. Мама пьёт молоко.",
           "Большая лодка плывёт по морю. Завтра мы пойдём в парк.",
           "Мой брат пишет письмо бабушке. Потом он будет обедать.",
           "Положи, пожалуйста, книгу на полку. Мы опаздываем на поезд."),
    "cs": ("Maminka peče buchty a babička pije mléko.",
           "Modrá loďka pluje pod mostem. Zítra pojedeme k moři.",
           "Můj bratr maluje obraz. Potom půjdeme spolu do parku.",
           "Prosím, polož mapu na stůl. Máme málo času."),
    "fi": ("Pappa paistaa pullaa ja mamma keittää kahvia.",
           "Pieni vene kulkee sillan alta. Huomenna menemme rannalle.",
           "Minun veljeni maalaa kuvan. Sitten pelaamme palloa puistossa.",
           "Pane kartta pöydälle, ole hyvä. Bussi lähtee aamulla."),
    "tr": ("Babam ekmek ve bal aldı. Annem bir bardak su içti.",
           "Mavi bir balık bota baktı. Yarın deniz kenarına gideceğiz.",
           "Benim ablam bir mektup yazdı. Sonra bahçede top oynadık.",
           "Lütfen kitabı masaya bırak. Pazartesi otobüsle gidiyoruz."),
    "hu": ("Apa barna kenyeret vett. Anya meleg tejet iszik.",
           "A kék hajó a part mellett megy. Holnap a Balatonra megyünk.",
           "A bátyám egy szép képet fest. Utána a parkban labdázunk.",
           "Kérlek, tedd a könyvet a polcra. A busz pontban nyolckor indul."),
}  # fmt: skip
"""Held-out sentences per language (written for facecast)."""

ALL_LANGUAGES = TRAINED_LANGUAGES + UNSEEN_LANGUAGES

IPA_SYMBOLS: dict[str, tuple[str, ...]] = {
    "a": ("AA",), "ä": ("AA",), "ɑ": ("AA",), "ɒ": ("AA",), "æ": ("AE",), "ɐ": ("AH",), "ə": ("AH",), "ʌ": ("AH",),
    "ɜ": ("ER",), "ɚ": ("ER",), "ɘ": ("AH",), "ɤ": ("AH",), "ɞ": ("AH",), "e": ("EY",), "ɛ": ("EH",),
    "i": ("IY",), "ɪ": ("IH",), "ɨ": ("IH",), "ɯ": ("IH",), "ᵻ": ("IH",), "o": ("OW",), "ɔ": ("AO",),
    "u": ("UW",), "ʊ": ("UH",), "ʉ": ("UW",), "ɵ": ("UH",), "y": ("UW",), "ʏ": ("UH",), "ø": ("OW",),
    "œ": ("AO",), "ɶ": ("AO",),
    "p": ("P",), "b": ("B",), "m": ("M",), "ɱ": ("M",), "f": ("F",), "v": ("V",), "ʋ": ("V",), "β": ("V",),
    "ɸ": ("F",), "w": ("W",), "ɥ": ("W",), "θ": ("TH",), "ð": ("DH",), "t": ("T",), "d": ("D",), "n": ("N",),
    "ɲ": ("N",), "ɳ": ("N",), "ŋ": ("NG",), "l": ("L",), "ɫ": ("L",), "ʎ": ("L",), "ɭ": ("L",), "ɬ": ("L",),
    "s": ("S",), "z": ("Z",), "ʃ": ("SH",), "ʒ": ("ZH",), "ɕ": ("SH",), "ʑ": ("ZH",), "ʂ": ("SH",), "ʐ": ("ZH",),
    "ɧ": ("SH",), "ç": ("HH",), "x": ("HH",), "χ": ("HH",), "h": ("HH",), "ɦ": ("HH",), "ħ": ("HH",),
    "k": ("K",), "g": ("G",), "ɡ": ("G",), "c": ("K",), "ɟ": ("G",), "q": ("K",), "ɣ": ("G",), "ɰ": ("Y",),
    "j": ("Y",), "ʝ": ("Y",), "r": ("R",), "ɾ": ("R",), "ɹ": ("R",), "ʁ": ("R",), "ʀ": ("R",), "ɻ": ("R",),
    "ʔ": ("T",),
}  # fmt: skip
"""Single IPA symbols of espeak-ng's other languages -> CMU phones (by lip shape and openness)."""

_IGNORED = set("ˈˌːˑʲʰʷˠˤ˞-_|.'̃ ̩̯̝̞̪̠") | {"\u0303", "\u0329", "\u032f", "\u031d", "\u031e", "\u032a", "\u0320"}


def ipa_to_cmu_multilingual(phoneme: str) -> tuple[str, ...]:
    """CMU phones for one espeak-ng IPA phoneme of any language: ``()`` for a pause, ``("NSN",)`` if unknown."""
    name = phoneme.replace("ˈ", "").replace("ˌ", "").strip()
    if not name:
        return ()
    if name in IPA_TO_CMU:
        return IPA_TO_CMU[name]
    bare = "".join(c for c in unicodedata.normalize("NFD", name) if not unicodedata.combining(c))
    if bare in IPA_TO_CMU:
        return IPA_TO_CMU[bare]
    out: list[str] = []
    for ch in bare:
        if ch in _IGNORED or ch.isdigit() or unicodedata.category(ch) in ("Lm", "Sk", "Mn"):
            continue
        mapped = IPA_SYMBOLS.get(ch)
        if mapped is None:
            return (NOISE,)
        if not out or out[-1] != mapped[0]:  # a geminate is one long phone
            out.extend(mapped)
    return tuple(out) if out else ()


def language_voice(language: str) -> str:
    """The held-out espeak-ng voice for ``language``."""
    return f"{language}+{HELD_OUT_VARIANT}"


def language_corpus(language: str) -> list[Utterance]:
    """The held-out sentences of ``language`` spoken by its held-out voice, with exact phone timings."""
    from facecast.evaluation.espeak import espeak_utterance

    if language not in SENTENCES:
        raise ValueError(f"no sentences for language {language!r}; choose from {', '.join(SENTENCES)}")
    voice = language_voice(language)
    out = []
    for i, text in enumerate(SENTENCES[language]):
        audio, alignment = espeak_utterance(text, voice, mapping=ipa_to_cmu_multilingual)
        out.append(Utterance(f"tts-{voice}/{i:02d}", f"lang:{language}", audio, text, alignment))
    return out


def unmapped_share(utts: list[Utterance]) -> float:
    """Share of speech time whose phone could not be mapped to a CMU phone (NSN)."""
    total = unknown = 0.0
    for utt in utts:
        for p in utt.alignment.phones if utt.alignment else ():
            if p.name != "SIL":
                total += p.end - p.start
                unknown += (p.end - p.start) if p.name == NOISE else 0.0
    return unknown / total if total else 0.0
