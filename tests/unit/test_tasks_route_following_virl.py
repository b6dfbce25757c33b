"""Route following from real V-IRL routes (``source: virl``, ``sweeps.tasks.virl_routes``): the
loader on a hand-made file in the format it assumes, and its errors, each naming the file. The
generated city, renderings, grading and episodes are tested in ``test_tasks_route_following.py``.
"""

import json
import random

import pytest

from sweeps.tasks.route_following import RouteFollowing, split_actions


def virl_files(tmp_path, routes, panos=None):
    (tmp_path / "route_infos.json").write_text(json.dumps(routes))
    if panos is not False:
        (tmp_path / "gps_pano_mapping.json").write_text(
            json.dumps(panos or {"40.1,-73.1": "p1", "40.1,-73.2": "p2", "40.2,-73.2": "p3"})
        )
    return tmp_path


VIRL_ROUTE = {
    "route_id": "r7",
    "start_heading": 185.0,  # ~south
    "instructions": [
        "1. First, turn right to face west.",
        "2. Move forward until you reach the intersection where Joe's Pizza is on your right.",
        "3. Turn to face north.",
        "4. Move forward until you reach the destination where Hotel 32One is on your front left.",
        "5. Stop.",
    ],
    "steps": [
        {"geocode": [40.1, -73.1], "action": "turn_direction(west)", "landmarks": []},
        {"geocode": [40.1, -73.1], "action": "forward()", "landmarks": ["Cafe X is on your left"]},
        {"geocode": [40.1, -73.2], "action": "turn_direction(north)", "landmarks": ["Joe's Pizza is on your right."]},
        {"geocode": [40.1, -73.2], "action": "forward()", "landmarks": ["Joe's Pizza is behind you"]},
        {"geocode": [40.2, -73.2], "action": "stop()", "landmarks": ["Hotel 32One is on your front left"]},
    ],
}


def test_virl_loader_reads_the_assumed_format(tmp_path):
    sharp = json.loads(json.dumps(VIRL_ROUTE))
    sharp["route_id"], sharp["start_heading"] = "sharp", 45  # northeast -> west is 135 degrees: skipped
    task = RouteFollowing(source="virl", virl_root=str(virl_files(tmp_path, [VIRL_ROUTE, sharp])))
    assert len(task._routes) == 1
    ex = task.sample("ood", random.Random(0))
    data = ex.data
    assert data["start_heading"] == "south"
    assert data["instructions"][1] == {"kind": "move", "landmark": "Joe's Pizza", "relation": "right"}
    assert data["instructions"][3] == {"kind": "move", "landmark": "Hotel 32One", "relation": "front left"}
    assert [s["instruction"] for s in data["steps"]] == [0, 1, 2, 3, 4]
    assert [s["pano"] for s in data["steps"]] == ["p1", "p1", "p2", "p2", "p3"]
    assert split_actions(data, "ood") == ["right", "forward", "right", "forward", "stop"]
    assert data["steps"][3]["observation"] == [["Joe's Pizza", "behind"]]
    assert task.instruction_lines(ex)[0] == "First, turn right."
    for k in range(task.num_steps(ex)):
        assert task.grade(task.at_step(ex, k), task.reference_completion(task.at_step(ex, k))).correct


@pytest.mark.parametrize(
    "breakage,message",
    [
        ("no_routes", "route_infos.json not found"),
        ("no_panos", "gps_pano_mapping.json not found"),
        ("bad_json", "route_infos.json is not readable JSON"),
        ("bad_instruction", "instruction 'Dance.' is not a turn, move or stop"),
        ("no_pano", "geocode 40.2,-73.2 has no panorama in gps_pano_mapping.json"),
        ("missing_key", "route 0 lacks or mistypes 'steps'"),
    ],
)
def test_virl_loader_errors_name_the_file(tmp_path, breakage, message):
    route = json.loads(json.dumps(VIRL_ROUTE))
    if breakage == "no_routes":
        (tmp_path / "gps_pano_mapping.json").write_text("{}")
    elif breakage == "no_panos":
        virl_files(tmp_path, [route], panos=False)
    elif breakage == "bad_json":
        virl_files(tmp_path, [route])
        (tmp_path / "route_infos.json").write_text("[{")
    elif breakage == "bad_instruction":
        route["instructions"][4] = "Dance."
        virl_files(tmp_path, [route])
    elif breakage == "no_pano":
        virl_files(tmp_path, [route], panos={"40.1,-73.1": "p1", "40.1,-73.2": "p2"})
    else:
        del route["steps"]
        virl_files(tmp_path, [route])
    with pytest.raises(ValueError, match="task.virl_root") as err:
        RouteFollowing(source="virl", virl_root=str(tmp_path))
    assert message in str(err.value) and "\n" not in str(err.value)
