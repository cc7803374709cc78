"""Random sentences for the synthetic corpus, from word lists built at run time.

English draws from a built-in list of common words and, when the ``pocketsphinx`` wheel is installed, from the
CMU pronouncing dictionary it ships (read from the installed package at run time, never copied). The other
languages use the short built-in lists below (our own choice of everyday words); Mandarin is tone-numbered
pinyin, which espeak-ng's ``cmn-latn-pinyin`` voice reads. Commas, full stops, question and exclamation marks
are sprinkled at random so the speech has pauses of several lengths.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

_WORDS: dict[str, str] = {
    "en": """
        the a an and or but if then so because when where what who which how why this that these those here there
        now never always often maybe very much many more most some any every each all both few little big small
        long short high low old new young good bad great best better right wrong true first last next other same
        different easy hard early late open close fast slow happy sad warm cold hot cool dark bright quiet loud
        full empty clean rich poor strong weak soft simple public private people person man woman child baby
        family friend mother father brother sister home house room door window table chair bed kitchen garden
        street city country world water fire earth air sun moon star sky rain snow wind tree flower apple bread
        butter milk coffee tea sugar salt pepper fish meat rice soup cake book paper pen picture music song voice
        word story letter name number time day night morning evening week month year today tomorrow yesterday
        minute hour moment money job work school office market shop bank hospital doctor teacher student boat
        car bus train plane road bridge river mountain beach island forest field animal bird dog cat horse cow
        sheep mouse bear monkey be have do say go get make know think take see come want look use find give tell
        call try ask need feel become leave put mean keep let begin seem help talk turn start show hear play run
        move like live believe hold bring happen write provide sit stand lose pay meet include continue set learn
        change lead understand watch follow stop create speak read spend grow walk win offer remember love
        consider appear buy wait serve die send expect build stay fall cut reach kill remain suggest raise pass
        sell require report decide pull push jump swim sing dance cook eat drink sleep wake smile laugh cry shout
        whisper breathe think please thank sorry hello goodbye yes no maybe perhaps beautiful wonderful terrible
        probably really quite almost already again still just only even also together above below behind between
        through under over around inside outside before after during without about against among toward people
        problem question answer idea reason result system program point place case part group company number
        government information power health service process level order view interest market model energy
        picture balance moment memory future history nature science theory method member pattern bubble puppy
        mumble pebble maple purple whisper ribbon rubber tumble bottle paddle puzzle zebra violin vision
        """,
    "de": """
        der die das und oder aber wenn dann weil wo was wer wie warum heute morgen gestern immer nie oft vielleicht
        sehr viel mehr klein gross alt neu jung gut schlecht schnell langsam warm kalt hell dunkel laut leise Haus
        Mutter Vater Bruder Schwester Kind Freund Stadt Land Wasser Feuer Luft Sonne Mond Stern Himmel Regen Schnee
        Baum Blume Apfel Brot Butter Milch Kaffee Tee Zucker Fisch Buch Papier Bild Musik Lied Stimme Wort Zeit Tag
        Nacht Woche Monat Jahr Arbeit Schule Strasse Auto Bahn Fluss Berg Wald Hund Katze Pferd Vogel gehen kommen
        machen sagen sehen wissen denken nehmen geben finden sprechen lesen schreiben spielen singen lachen essen
        trinken schlafen bleiben bringen beginnen glauben helfen zeigen warten bitte danke ja nein schon noch nur
        auch zusammen ueber unter hinter zwischen durch ohne gegen Problem Frage Antwort Idee Grund Ergebnis
        """,
    "fr": """
        le la les un une et ou mais si alors parce que quand comment pourquoi aujourd'hui demain hier toujours
        jamais souvent peut-etre tres beaucoup plus petit grand vieux nouveau jeune bon mauvais vite lent chaud
        froid clair sombre maison mere pere frere soeur enfant ami ville pays eau feu air soleil lune etoile ciel
        pluie neige arbre fleur pomme pain beurre lait cafe the sucre poisson livre papier image musique chanson
        voix mot temps jour nuit semaine mois annee travail ecole rue voiture train riviere montagne foret chien
        chat cheval oiseau aller venir faire dire voir savoir penser prendre donner trouver parler lire ecrire
        jouer chanter rire manger boire dormir rester porter commencer croire aider montrer attendre merci oui non
        deja encore seulement aussi ensemble dessus dessous derriere entre pendant sans contre probleme question
        reponse idee raison resultat bonjour bonsoir toujours partout
        """,
    "es": """
        el la los las un una y o pero si entonces porque cuando donde como por que hoy manana ayer siempre nunca
        a menudo quizas muy mucho mas pequeno grande viejo nuevo joven bueno malo rapido lento caliente frio claro
        oscuro casa madre padre hermano hermana nino amigo ciudad pais agua fuego aire sol luna estrella cielo
        lluvia nieve arbol flor manzana pan mantequilla leche cafe te azucar pescado libro papel imagen musica
        cancion voz palabra tiempo dia noche semana mes ano trabajo escuela calle coche tren rio montana bosque
        perro gato caballo pajaro ir venir hacer decir ver saber pensar tomar dar encontrar hablar leer escribir
        jugar cantar reir comer beber dormir quedar llevar empezar creer ayudar mostrar esperar gracias si no ya
        todavia solo tambien juntos sobre bajo detras entre durante sin contra problema pregunta respuesta idea
        razon resultado hola buenas playa mesa ventana puerta
        """,
    "it": """
        il lo la i gli le un una e o ma se allora perche quando dove come oggi domani ieri sempre mai spesso forse
        molto piu piccolo grande vecchio nuovo giovane buono cattivo veloce lento caldo freddo chiaro scuro casa
        madre padre fratello sorella bambino amico citta paese acqua fuoco aria sole luna stella cielo pioggia
        neve albero fiore mela pane burro latte caffe te zucchero pesce libro carta immagine musica canzone voce
        parola tempo giorno notte settimana mese anno lavoro scuola strada macchina treno fiume montagna bosco
        cane gatto cavallo uccello andare venire fare dire vedere sapere pensare prendere dare trovare parlare
        leggere scrivere giocare cantare ridere mangiare bere dormire restare portare cominciare credere aiutare
        mostrare aspettare grazie si no gia ancora solo anche insieme sopra sotto dietro tra durante senza contro
        problema domanda risposta idea ragione risultato ciao buongiorno bella piazza pizza
        """,
    "pt": """
        o a os as um uma e ou mas se entao porque quando onde como hoje amanha ontem sempre nunca muitas vezes
        talvez muito mais pequeno grande velho novo jovem bom mau rapido lento quente frio claro escuro casa mae
        pai irmao irma crianca amigo cidade pais agua fogo ar sol lua estrela ceu chuva neve arvore flor maca pao
        manteiga leite cafe cha acucar peixe livro papel imagem musica cancao voz palavra tempo dia noite semana
        mes ano trabalho escola rua carro comboio rio montanha floresta cao gato cavalo passaro ir vir fazer dizer
        ver saber pensar tomar dar encontrar falar ler escrever jogar cantar rir comer beber dormir ficar levar
        comecar acreditar ajudar mostrar esperar obrigado sim nao ja ainda so tambem juntos sobre sob atras entre
        durante sem contra problema pergunta resposta ideia razao resultado ola bom dia praia mesa janela porta
        """,
    "nl": """
        de het een en of maar als dan omdat wanneer waar wat wie hoe waarom vandaag morgen gisteren altijd nooit
        vaak misschien heel veel meer klein groot oud nieuw jong goed slecht snel langzaam warm koud licht donker
        huis moeder vader broer zus kind vriend stad land water vuur lucht zon maan ster hemel regen sneeuw boom
        bloem appel brood boter melk koffie thee suiker vis boek papier beeld muziek lied stem woord tijd dag
        nacht week maand jaar werk school straat auto trein rivier berg bos hond kat paard vogel gaan komen maken
        zeggen zien weten denken nemen geven vinden spreken lezen schrijven spelen zingen lachen eten drinken
        slapen blijven brengen beginnen geloven helpen tonen wachten dank ja nee al nog alleen ook samen boven
        onder achter tussen zonder tegen probleem vraag antwoord idee reden resultaat hallo fiets
        """,
    "pl": """
        i lub ale jesli wtedy poniewaz kiedy gdzie co kto jak dlaczego dzisiaj jutro wczoraj zawsze nigdy czesto
        moze bardzo duzo wiecej maly duzy stary nowy mlody dobry zly szybko wolno cieply zimny jasny ciemny dom
        matka ojciec brat siostra dziecko przyjaciel miasto kraj woda ogien powietrze slonce ksiezyc gwiazda niebo
        deszcz snieg drzewo kwiat jablko chleb maslo mleko kawa herbata cukier ryba ksiazka papier obraz muzyka
        piosenka glos slowo czas dzien noc tydzien miesiac rok praca szkola ulica samochod pociag rzeka gora las
        pies kot kon ptak isc przyjsc robic mowic widziec wiedziec myslec brac dawac znalezc czytac pisac grac
        spiewac smiac jesc pic spac zostac nosic zaczynac wierzyc pomagac pokazywac czekac dziekuje tak nie juz
        jeszcze tylko tez razem nad pod za miedzy bez przeciw problem pytanie odpowiedz pomysl powod wynik czesc
        """,
    "cmn": """
        ni3hao3 xie4xie5 zai4jian4 wo3 ni3 ta1 wo3men5 ni3men5 ta1men5 zhe4 na4 shen2me5 zen3me5 wei4shen2me5
        jin1tian1 ming2tian1 zuo2tian1 xian4zai4 yi3qian2 yi3hou4 zao3shang5 wan3shang5 peng2you5 ma1ma5 ba4ba5
        ge1ge5 mei4mei5 hai2zi5 lao3shi1 xue2sheng5 yi1sheng1 jia1 fang2zi5 men2 chuang1hu5 zhuo1zi5 yi3zi5
        cheng2shi4 guo2jia1 shui3 huo3 tian1 tai4yang5 yue4liang5 xing1xing5 yu3 xue3 feng1 shu4 hua1 ping2guo3
        mian4bao1 niu2nai3 ka1fei1 cha2 tang2 yu2 rou4 mi3fan4 tang1 shu1 zhi3 bi3 yin1yue4 ge1 sheng1yin1 zi4
        shi2jian1 gong1zuo4 xue2xiao4 shang1dian4 yi1yuan4 che1 huo3che1 fei1ji1 lu4 qiao2 he2 shan1 hai3 gou3
        mao1 ma3 niao3 shi4 you3 zuo4 shuo1 qu4 lai2 kan4 ting1 xiang3 zhi1dao4 xi3huan5 ai4 chi1 he1 shui4jiao4
        zou3 pao3 chang4 xiao4 ku1 bang1zhu4 deng3 kai1 guan1 mai3 mai4 hen3 tai4 zui4 da4 xiao3 hao3 huai4 kuai4
        man4 re4 leng3 gao1 ai3 chang2 duan3 xin1 lao3 piao4liang5 gao1xing4 nan2guo4 ke3yi3 bu4 mei2you3 dou1
        ye3 hai2 jiu4 cai2 yi1qi3 yi1 er4 san1 si4 wu3 liu4 qi1 ba1 jiu3 shi2 bai3 qian1 wan4 bei3jing1 shang4hai3
        """,
}
LANGUAGES: tuple[str, ...] = tuple(_WORDS)

WORDS_PER_SECOND: dict[str, float] = {"cmn": 2.2}
"""Rough speaking rate at rate 1 (default 2.6 words/s), used to size a sentence for a wanted duration."""

_CMUDICT = ("model", "en-us", "cmudict-en-us.dict")
_CMU_WORD = re.compile(r"^[a-z]{2,11}$")


@lru_cache(maxsize=1)
def _cmudict_words() -> tuple[str, ...]:
    """Plain words of the CMU dictionary in the installed pocketsphinx wheel (empty when it is not installed)."""
    try:
        import pocketsphinx  # type: ignore[import-not-found]
    except ImportError:
        return ()
    path = Path(pocketsphinx.__file__).parent.joinpath(*_CMUDICT)
    if not path.is_file():
        return ()
    words = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            word = line.split(" ", 1)[0]
            if _CMU_WORD.match(word):
                words.append(word)
    return tuple(words)


@cache
def word_list(language: str) -> tuple[str, ...]:
    """The built-in words of ``language`` (one of :data:`LANGUAGES`), de-duplicated, in a fixed order."""
    if language not in _WORDS:
        raise ValueError(f"no word list for language {language!r}; have {', '.join(LANGUAGES)}")
    return tuple(dict.fromkeys(_WORDS[language].split()))


def random_words(rng: np.random.Generator, language: str, count: int, dictionary_share: float = 0.35) -> list[str]:
    """``count`` random words; for English a ``dictionary_share`` of them from cmudict when it is installed."""
    common = word_list(language)
    extra = _cmudict_words() if language == "en" else ()
    out = []
    for _ in range(count):
        use_extra = bool(extra) and rng.uniform() < dictionary_share
        pool = extra if use_extra else common
        out.append(pool[int(rng.integers(len(pool)))])
    return out


def make_text(rng: np.random.Generator, language: str, seconds: float, rate: float = 1.0) -> str:
    """Sentences of random words lasting about ``seconds`` at speaking-rate factor ``rate``, with punctuation."""
    total = max(2, round(seconds * WORDS_PER_SECOND.get(language, 2.6) * rate))
    words = random_words(rng, language, total)
    pieces: list[str] = []
    sentence_start = True
    for k, word in enumerate(words):
        if sentence_start and language != "cmn":
            word = word[:1].upper() + word[1:]
        sentence_start = False
        last = k == len(words) - 1
        u = rng.uniform()
        if last or (u < 0.08 and k > 1):
            word += str(rng.choice([".", ".", "?", "!"]))
            sentence_start = True
        elif u < 0.2:
            word += str(rng.choice([",", ",", ";"]))
        pieces.append(word)
    return " ".join(pieces)
