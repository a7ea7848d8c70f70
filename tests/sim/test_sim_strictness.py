"""What the real services refuse, the simulator refuses too (it used to let these through)."""

from __future__ import annotations

import httpx
import pytest

from sim_helpers import ASYNC, AUTH, T2I_PATH, VTRIX_CREATE, data_uri, messages, running, t2i


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with running(tmp_path_factory.mktemp("strict"), task_seconds=30) as server:
        yield server


def vtrix(sim, body: dict) -> httpx.Response:
    return httpx.post(sim.url + VTRIX_CREATE, json=body, headers=AUTH)


def dashscope(sim, body: dict) -> httpx.Response:
    return httpx.post(sim.dashscope_url + T2I_PATH, json=body, headers=ASYNC)


def code(answer: httpx.Response) -> str:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    return body["error"]["code"] if "error" in body else body["code"]


def test_t2i_takes_exactly_one_text_and_no_image(sim):
    with_image = {"model": "wan26_t2i", "input": messages("a fox", data_uri()), "parameters": {"n": 1}}
    assert code(vtrix(sim, with_image)) == "001015004"
    assert code(dashscope(sim, {**with_image, "model": "wan2.6-t2i"})) == "InvalidParameter"
    two_texts = {"model": "wan26_t2i", "input": {"messages": [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]}]},
                 "parameters": {"n": 1}}
    assert code(vtrix(sim, two_texts)) == "001015004"
    no_text = {"model": "wan26_t2i", "input": {"messages": [{"role": "user", "content": [{"prompt": "a"}]}]}}
    assert code(vtrix(sim, no_text)) == "001015005"
    # i2i numbers the same check differently.
    i2i_two_texts = {"model": "wan26_i2i", "input": {"messages": [{"role": "user", "content": [
        {"text": "a"}, {"text": "b"}, {"image": data_uri()}]}]}}
    assert code(vtrix(sim, i2i_two_texts)) == "001021005"
    assert code(vtrix(sim, {"model": "wan26_i2i", "input": {"messages": [{"role": "user", "content": "x"}]}})) == "001021004"


@pytest.mark.parametrize(("model", "expected"), [("wan26_t2i", "001015007"), ("wan26_i2i", "001021009")])
def test_a_long_negative_prompt_is_refused_not_truncated(sim, model, expected):
    images = () if model == "wan26_t2i" else (data_uri(),)
    body = {"model": model, "input": messages("a fox", *images), "parameters": {"n": 1, "negative_prompt": "x" * 501}}
    assert code(vtrix(sim, body)) == expected
    body["parameters"]["negative_prompt"] = "x" * 500
    assert vtrix(sim, body).status_code == 200


def test_a_long_negative_prompt_on_dashscope(sim):
    body = {"model": "wan2.6-t2i", "input": messages("a fox"), "parameters": {"n": 1, "negative_prompt": "x" * 501}}
    assert code(dashscope(sim, body)) == "InvalidParameter"


@pytest.mark.parametrize(("name", "value", "expected"), [("n", "2", "001015008"), ("n", 2.5, "001015008"),
                                                         ("n", True, "001015008"), ("prompt_extend", "true", "InvalidParameter"),
                                                         ("size", 1280, "001015010")])
def test_parameters_are_not_coerced(sim, name, value, expected):
    assert code(vtrix(sim, t2i(**{name: value}))) == expected
    assert code(dashscope(sim, {**t2i(**{name: value}), "model": "wan2.6-t2i"})) == "InvalidParameter"


def test_i2i_images_outside_384_to_5000_pixels_have_their_own_code(sim):
    def edit(image: str) -> dict:
        return {"model": "wan26_i2i", "input": messages("make it blue", image), "parameters": {"n": 1}}

    assert code(vtrix(sim, edit(data_uri(383, 500)))) == "001021019"
    assert code(vtrix(sim, edit(data_uri(5001, 400)))) == "001021019"
    assert vtrix(sim, edit(data_uri(384, 384))).status_code == 200
    # wan26_image allows 240 px, and has no code table of its own.
    image = {"model": "wan26_image", "input": messages("make it blue", data_uri(383, 500)), "parameters": {"n": 1}}
    assert vtrix(sim, image).status_code == 200
    image["input"] = messages("make it blue", data_uri(239, 500))
    assert code(vtrix(sim, image)) == "InvalidParameter"


def test_a_transparent_png_is_still_refused(sim):
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (640, 480), (1, 2, 3, 100)).save(buffer, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    body = {"model": "wan26_image", "input": messages("make it blue", uri), "parameters": {"n": 1}}
    assert code(vtrix(sim, body)) == "InvalidParameter"
