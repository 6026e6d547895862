"""The speech bench's corpora: independent sets of labelled Korean utterances, each produced
differently (texts, voices, speeds, pitches, noise, the telephone line), so a recogniser tuned
on one is checked on the others. `make_corpus.py` renders them; `run.py` scores them.

`heldout` is the split no tuning looks at: its texts, voices and speeds appear in no other
corpus. Thresholds and design are decided on the others; heldout is reported once
(BENCHMARKS.md says when).
"""

from __future__ import annotations

from dataclasses import dataclass

# (text, intent or None). None: not a request, must not be routed.
Text = tuple[str, str | None]


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    about: str
    texts: tuple[Text, ...]
    voices: tuple[str, ...]
    speeds: tuple[int, ...]
    pitches: tuple[int, ...]
    # Line conditions drawn per utterance: "clean", "<noise>:<snr dB>" with noise one of
    # white/pink/brown/babble, "phone" (300-3400 Hz band + 8 kHz mu-law round trip), or
    # "phone+<noise>:<snr>" (noise first, then the telephone line).
    conditions: tuple[str, ...]
    per_text: int
    seed: int
    heldout: bool = False


PROJECT_VOICES = ("ko", "ko+m3", "ko+f2", "ko+f4", "ko+klatt", "ko+m7")
# Voices no tuning corpus uses: heldout's own.
HELDOUT_VOICES = ("ko+m4", "ko+f3", "ko+klatt4", "ko+grandma", "ko+iven3")
OTHER_VOICES = ("ko+m1", "ko+m2", "ko+m5", "ko+f1", "ko+f5", "ko+klatt2", "ko+Andy", "ko+croak")
# heldout2's voices: in no other corpus, held-out ones included (made after heldout was seen).
HELDOUT2_VOICES = ("ko+m6", "ko+klatt3", "ko+iven2", "ko+Denis", "ko+steph", "ko+m8")

PROJECT_TEXTS: tuple[Text, ...] = (
    ("물", "water"),
    ("수도", "water"),
    ("온수", "water"),
    ("물이 안 나와요", "water"),
    ("온수가 안 나와요", "water"),
    ("난방", "heating"),
    ("보일러", "heating"),
    ("난방이 안 돼요", "heating"),
    ("보일러가 고장 났어요", "heating"),
    ("전기", "electricity"),
    ("정전", "electricity"),
    ("전기가 나갔어요", "electricity"),
    ("엘리베이터", "lift"),
    ("승강기", "lift"),
    ("엘리베이터가 고장 났어요", "lift"),
    ("엘리베이터가 멈췄어요", "lift"),
    ("상담원", "operator"),
    ("상담원 연결해 주세요", "operator"),
    ("가스 냄새가 나요", "gas"),
    ("계량기", "meters"),
    ("관리비", "billing"),
    ("하수구가 막혔어요", "sewage"),
    ("안녕하세요", None),
    ("여보세요", None),
    ("감사합니다", None),
    ("잠시만요", None),
    ("모르겠어요", None),
    ("오늘 날씨가 좋네요", None),
    ("제 이름은 김민수입니다", None),
    ("아니요 괜찮아요", None),
)

CORPORA: tuple[CorpusSpec, ...] = (
    CorpusSpec(
        "project",
        "the project's original corpus (words, short sentences, non-requests; white noise)",
        PROJECT_TEXTS,
        PROJECT_VOICES,
        (130, 160, 190),
        (35, 50, 70),
        ("clean", "clean", "white:25", "white:15"),
        per_text=4,
        seed=7,
    ),
    CorpusSpec(
        "voices",
        "the five menu words and everyday sentences in other voices, speeds and pitches",
        (
            ("물", "water"),
            ("난방", "heating"),
            ("전기", "electricity"),
            ("엘리베이터", "lift"),
            ("상담원", "operator"),
            ("물이 안 나와요", "water"),
            ("난방이 안 돼요", "heating"),
            ("전기가 안 들어와요", "electricity"),
            ("엘리베이터가 안 움직여요", "lift"),
            ("상담원이랑 통화하고 싶어요", "operator"),
        ),
        OTHER_VOICES,
        (100, 120, 210, 240),
        (20, 40, 80, 95),
        ("clean",),
        per_text=3,
        seed=11,
    ),
    CorpusSpec(
        "bare",
        "bare keywords and synonyms, one word each",
        (
            ("물", "water"),
            ("수도", "water"),
            ("온수", "water"),
            ("난방", "heating"),
            ("보일러", "heating"),
            ("전기", "electricity"),
            ("정전", "electricity"),
            ("엘리베이터", "lift"),
            ("승강기", "lift"),
            ("상담원", "operator"),
            ("상담사", "operator"),
            ("가스", "gas"),
            ("계량기", "meters"),
            ("관리비", "billing"),
            ("하수구", "sewage"),
        ),
        PROJECT_VOICES + OTHER_VOICES,
        (110, 150, 190, 230),
        (30, 50, 75),
        ("clean", "clean", "white:20"),
        per_text=2,
        seed=13,
    ),
    CorpusSpec(
        "long",
        "the keyword inside a long sentence",
        (
            ("안녕하세요 저는 삼동 오백호에 사는데요 아침부터 물이 하나도 안 나와요", "water"),
            ("부엌 싱크대 밑에서 물이 계속 새고 있어요", "water"),
            ("여보세요 관리실이죠 어제 저녁부터 난방이 전혀 안 돼서 너무 추워요", "heating"),
            ("보일러에서 이상한 소리가 나고 집이 너무 추워요", "heating"),
            ("지금 우리 집에 전기가 갑자기 나가서 아무것도 안 돼요", "electricity"),
            ("엘리베이터가 칠층에서 멈춰서 할머니가 안에 계세요 빨리 와 주세요", "lift"),
            ("잘 모르겠는데 그냥 상담원하고 직접 이야기하고 싶어요", "operator"),
        ),
        PROJECT_VOICES + OTHER_VOICES,
        (140, 170, 200),
        (35, 55, 75),
        ("clean", "white:20"),
        per_text=3,
        seed=17,
    ),
    CorpusSpec(
        "synonyms",
        "synonyms instead of the five menu words, in short sentences",
        (
            ("수돗물이 안 나와요", "water"),
            ("단수 됐어요", "water"),
            ("누수가 있어요", "water"),
            ("보일러가 안 켜져요", "heating"),
            ("라디에이터가 차가워요", "heating"),
            ("정전됐어요", "electricity"),
            ("차단기가 내려갔어요", "electricity"),
            ("승강기가 고장 났어요", "lift"),
            ("리프트가 안 움직여요", "lift"),
            ("상담사 연결해 주세요", "operator"),
            ("직원하고 통화할게요", "operator"),
        ),
        PROJECT_VOICES + OTHER_VOICES,
        (130, 170, 210),
        (30, 50, 80),
        ("clean", "white:20"),
        per_text=3,
        seed=19,
    ),
    CorpusSpec(
        "nonrequests",
        "greetings, small talk and filler: nothing must be routed",
        (
            ("안녕하세요 수고하십니다", None),
            ("네 알겠습니다", None),
            ("잠깐만 기다려 주세요", None),
            ("아 그게 뭐였더라", None),
            ("다시 한번 말씀해 주세요", None),
            ("아니에요 잘못 걸었어요", None),
            ("고맙습니다 좋은 하루 되세요", None),
            ("음 저기요", None),
            ("지금 몇 시예요", None),
            ("우리 애가 학교에 갔어요", None),
        ),
        PROJECT_VOICES + OTHER_VOICES,
        (120, 160, 200),
        (30, 50, 80),
        ("clean", "white:20", "babble:10"),
        per_text=3,
        seed=23,
    ),
    CorpusSpec(
        "noisy",
        "requests under pink, brown and babble noise (sox), 5-15 dB SNR",
        (
            ("물", "water"),
            ("물이 안 나와요", "water"),
            ("난방", "heating"),
            ("난방이 안 돼요", "heating"),
            ("전기", "electricity"),
            ("전기가 나갔어요", "electricity"),
            ("엘리베이터", "lift"),
            ("엘리베이터가 멈췄어요", "lift"),
            ("상담원", "operator"),
            ("상담원 연결해 주세요", "operator"),
            ("여보세요", None),
            ("감사합니다", None),
        ),
        PROJECT_VOICES + OTHER_VOICES,
        (130, 160, 190),
        (35, 50, 70),
        ("pink:15", "pink:10", "brown:10", "brown:5", "babble:10", "babble:5"),
        per_text=3,
        seed=29,
    ),
    CorpusSpec(
        "phone",
        "telephone line: 300-3400 Hz band and an 8 kHz mu-law round trip, some with noise",
        (
            ("물이 안 나옵니다", "water"),
            ("물", "water"),
            ("난방 좀 봐 주세요", "heating"),
            ("난방", "heating"),
            ("전기 문제예요", "electricity"),
            ("전기", "electricity"),
            ("엘리베이터 고장이요", "lift"),
            ("엘리베이터", "lift"),
            ("상담원 부탁드려요", "operator"),
            ("상담원", "operator"),
            ("네 안녕하세요", None),
        ),
        PROJECT_VOICES + OTHER_VOICES,
        (120, 160, 200),
        (30, 50, 75),
        ("phone", "phone", "phone+white:20", "phone+pink:12"),
        per_text=3,
        seed=31,
    ),
    CorpusSpec(
        "heldout",
        "held out: texts, voices and speeds no other corpus has, every line condition",
        (
            ("샤워하는데 물이 끊겼어요", "water"),
            ("수도꼭지에서 물이 안 나와요", "water"),
            ("방이 너무 추워요 난방 좀 확인해 주세요", "heating"),
            ("보일러 점검 부탁드려요", "heating"),
            ("전기 차단기가 자꾸 떨어져요", "electricity"),
            ("집 전체가 정전이에요", "electricity"),
            ("엘리베이터 문이 안 열려요", "lift"),
            ("승강기에 사람이 갇혔어요", "lift"),
            ("상담원 바꿔 주세요", "operator"),
            ("가스 냄새가 심해요", "gas"),
            ("이번 달 관리비가 이상해요", "billing"),
            ("네 여보세요 들리세요", None),
            ("괜찮습니다 끊을게요", None),
            ("오늘 비가 많이 오네요", None),
        ),
        HELDOUT_VOICES,
        (115, 145, 175, 220),
        (25, 45, 65, 90),
        ("clean", "white:18", "pink:12", "babble:12", "phone", "phone+brown:10"),
        per_text=3,
        seed=101,
        heldout=True,
    ),
    CorpusSpec(
        "heldout2",
        "held out again (heldout was looked at twice): new texts, voices, speeds, noise seeds",
        (
            ("화장실에 물이 안 내려가요", "water"),
            ("아파트 전체에 물이 안 나와요", "water"),
            ("물 좀 확인해 주세요", "water"),
            ("난방", "heating"),
            ("거실 난방이 꺼졌어요", "heating"),
            ("보일러가 작동을 안 해요", "heating"),
            ("전기", "electricity"),
            ("전기가 깜빡깜빡해요", "electricity"),
            ("엘리베이터 버튼이 안 눌려요", "lift"),
            ("엘리베이터", "lift"),
            ("상담원이요", "operator"),
            ("상담원한테 물어볼게요", "operator"),
            ("가스가 새는 것 같아요", "gas"),
            ("계량기 숫자를 알려 드릴게요", "meters"),
            ("저녁 먹었어요", None),
            ("누구세요", None),
        ),
        HELDOUT2_VOICES,
        (105, 135, 165, 205),
        (28, 42, 60, 85),
        ("clean", "white:16", "pink:9", "brown:12", "babble:8", "phone", "phone+pink:14"),
        per_text=3,
        seed=2027,
        heldout=True,
    ),
)

BY_NAME = {spec.name: spec for spec in CORPORA}
# Background talk for "babble" noise: other sentences, other voices (never a keyword).
BABBLE_TEXTS = (
    "오늘 시장에 가서 사과를 샀어요",
    "텔레비전에서 뉴스가 나오고 있어요",
    "아이들이 밖에서 놀고 있네요",
    "내일은 친구를 만나기로 했어요",
)
