"""Determinant and Rank: exact ground truth, sampling, prompts and the strict answer parser."""

import itertools
import json
import math
import random
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sweeps.tasks import Example
from sweeps.tasks.determinant import Determinant, exact_det, parse_int_answer, round_half_away
from sweeps.tasks.rank import Rank, exact_rank, matmul

CONF = Path(__file__).resolve().parents[2] / "conf" / "task"
DET, RANK = Determinant(), Rank()


def leibniz_det(m):
    """Independent check: sum over permutations of sign * product."""
    n = len(m)
    total = 0
    for perm in itertools.permutations(range(n)):
        inversions = sum(perm[i] > perm[j] for i in range(n) for j in range(i + 1, n))
        total += (-1) ** inversions * math.prod(m[i][perm[i]] for i in range(n))
    return total


# --- exact ground truth ------------------------------------------------------------------------


def test_determinants_of_hand_picked_matrices():
    assert exact_det([[1, 2], [3, 4]]) == -2  # 1*4 - 2*3
    assert exact_det([[2, -1, 0], [-1, 2, -1], [0, -1, 2]]) == 4  # 2*(4-1) + 1*(-2-0) = 6 - 2
    # Zero top-left pivot forces a row swap: 0*(0+9) - 1*(8-12) + 2*(-3-0) = 4 - 6 = -2.
    assert exact_det([[0, 1, 2], [1, 0, 3], [4, -3, 8]]) == -2
    assert exact_det([[1, 2, 3], [2, 4, 6], [0, 1, 1]]) == 0  # row 2 = 2 * row 1
    assert exact_det([[0, 0], [0, 5]]) == 0
    assert exact_det([[-7]]) == -7


def test_bareiss_matches_leibniz_on_random_matrices():
    rng = random.Random(0)
    for n in (2, 3, 4, 5):
        for _ in range(50):
            m = [[rng.randint(-5, 5) for _ in range(n)] for _ in range(n)]
            if rng.random() < 0.3:
                m[rng.randrange(n)] = [0] * n  # some singular ones
            assert exact_det(m) == leibniz_det(m)


def test_round_half_away_from_zero():
    # (a + b) / 2 for a + b = 3, -3, 1, -1, 4, 0: ties go away from zero.
    assert [round_half_away(x) for x in (3, -3, 1, -1, 4, 0, -4)] == [2, -2, 1, -1, 2, 0, -2]
    assert round(1.5) == 2 and round(2.5) == 2  # Python's banker's rounding differs at 2.5 ...
    assert round_half_away(5) == 3  # ... where we give 3


def test_ranks_of_hand_picked_matrices():
    assert exact_rank([[0] * 5 for _ in range(4)]) == 0
    # Row 4 = row 1 + row 3 and row 2 = 2 * row 1, so rank 2.
    m = [[1, 2, 3, 4], [2, 4, 6, 8], [0, 1, 1, 1], [1, 3, 4, 5], [0, 0, 0, 0]]
    assert exact_rank(m) == 2
    assert exact_rank([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0]]) == 4
    assert exact_rank([[0, 0, 3], [0, 0, 6]]) == 1
    assert matmul([[1, 2]], [[3], [4]]) == [[11]]


# --- sampling ----------------------------------------------------------------------------------


def test_determinant_samples():
    rng = random.Random(0)
    symmetric = 0
    for split, n, bound in (("id", 2, 4), ("ood", 3, 5)):
        for _ in range(400):
            m = DET.sample(split, rng).matrix
            assert len(m) == n and all(len(row) == n for row in m)
            assert all(-bound <= x <= bound for row in m for x in row)
            assert exact_det(m) != 0
            symmetric += all(m[i][j] == m[j][i] for i in range(n) for j in range(n))
    # P(symmetric) = 1/2 + 1/2 * P(a random matrix is symmetric) ~ 0.56 (2x2), 0.5 (3x3): ~425 of 800.
    assert 340 < symmetric < 510


def test_rank_samples_cover_every_rank_with_the_right_shape():
    rng = random.Random(0)
    for split, shape in (("id", (4, 5)), ("ood", (5, 4))):
        seen = set()
        for _ in range(200):
            m = RANK.sample(split, rng).matrix
            assert (len(m), len(m[0])) == shape
            seen.add(exact_rank(m))
        assert seen == {0, 1, 2, 3, 4}


def test_matrix_sampling_depends_only_on_the_rng_it_is_given():
    """The same seed gives the same example whatever the global random state; another seed another."""
    for task in (DET, RANK):
        for split in ("id", "ood"):
            random.seed(1)
            one = task.sample(split, random.Random(9))
            random.seed(2)
            assert task.sample(split, random.Random(9)) == one
            assert [task.sample(split, random.Random(s)) for s in range(10, 13)] != [one] * 3


# --- prompts, references and strict grading ----------------------------------------------------


def test_prompts_and_reference_completions():
    ex = Example("id", {"matrix": [[1, 2], [3, 4]]})
    text = DET.prompt(ex)
    assert text.startswith("Calculate the determinant of the matrix:\n[[1, 2], [3, 4]]\n")
    assert json.loads(text[text.rindex("{") :]) == {"answer": "the determinant, as an integer"}
    assert DET.reference_completion(ex) == '{"answer": -2}'
    assert RANK.prompt(ex).startswith("Find the rank of the matrix.\n[[1, 2], [3, 4]]\n")
    assert RANK.reference_completion(ex) == '{"answer": 2}'
    rng = random.Random(4)
    for task in (DET, RANK):
        for split in ("id", "ood"):
            ex = task.sample(split, rng)
            assert task.grade(ex, task.reference_completion(ex)).reward == 5.0


@pytest.mark.parametrize(
    "reply,expected",
    [
        ('{"answer": 2}', 2),
        ('{"answer": "-7"}', -7),
        ('The result is "answer": -7 as computed.', -7),
        ('{"answer": -7,}', -7),  # invalid JSON, strict regex
        ('```json\n{"reasoning": "det = 1*4-2*3", "answer": -2}\n```', -2),
        ("The matrix [[1,2],[3,4]] has answer 2", None),  # no "answer" key: never the first integer
        ("answer: 2", None),
        ('{"answer": 2.5}', None),
        ('{"answer": true}', None),
        ('{"answer": "two"}', None),
        ('{"result": 2}', None),
        ("", None),
    ],
)
def test_strict_answer_parser(reply, expected):
    assert parse_int_answer(reply) == expected


def test_matrix_grades():
    ex = Example("id", {"matrix": [[1, 2], [3, 4]]})
    assert DET.grade(ex, '{"answer": -2}') == (g := DET.grade(ex, '"answer": -2'))
    assert (g.reward, g.correct, g.errors) == (5.0, True, ())
    g = DET.grade(ex, '{"answer": 2}')
    assert (g.reward, g.correct, g.errors, g.feedback) == (-1.0, False, ("wrong_answer",), ("wrong answer",))
    g = DET.grade(ex, "The matrix [[1,2],[3,4]] has determinant -2")
    assert (g.reward, g.errors, g.feedback) == (-1.0, ("format_error",), ("format error",))
    assert RANK.grade(Example("id", {"matrix": [[0, 0], [0, 0]]}), '{"answer": 0}').reward == 5.0
    assert DET.error_classes == RANK.error_classes == ("format_error", "wrong_answer")


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad,field",
    [({"id_low": 4}, "id_low"), ({"ood_size": 0}, "ood_size"), ({"symmetrize_prob": 1.5}, "symmetrize_prob")],
)
def test_determinant_invalid_fields(bad, field):
    with pytest.raises(ValueError, match=f"task.{field}"):
        Determinant(**bad)


@pytest.mark.parametrize(
    "bad,field",
    [({"max_rank": -1}, "max_rank"), ({"id_rows": 0}, "id_rows"), ({"ood_low": 5, "ood_high": 5}, "ood_low")],
)
def test_rank_invalid_fields(bad, field):
    with pytest.raises(ValueError, match=f"task.{field}"):
        Rank(**bad)


@pytest.mark.parametrize("stem,cls", [("determinant", Determinant), ("rank", Rank)])
def test_yaml_configs_instantiate_to_the_defaults(stem, cls):
    cfg = OmegaConf.load(CONF / f"{stem}.yaml")
    task = instantiate(cfg)
    assert task == cls() and task.name == stem
    assert set(cfg) - {"_target_"} == {f for f in cls.__dataclass_fields__ if f != "error_classes"}
