"""Image loading, the official affine preprocessing (bit-exact vs the official fixtures) and the letterbox."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from python_ref.errors import LitePoseError
from python_ref.preprocess import (LETTERBOX_FILL_RGB, Letterbox, exif_orientation, jpeg_exif_orientation, letterbox,
                                   load_image, load_image_rgb, normalize_imagenet, official_input_size,
                                   official_resize)

PARITY = ["litepose-auto-m-crowdpose-448", "litepose-l-coco-random", "litepose-s-crowdpose-random",
          "litepose-xs-crowdpose-random"]


def _image_path(shared_dir: Path, data_path) -> Path:
    """Fixture `data_path`s are relative to the folder that contains shared/."""
    return shared_dir.parent / str(data_path)


# ---- official mode against the official fixtures --------------------------------------------------

@pytest.mark.needs_shared
@pytest.mark.parametrize("name", PARITY)
def test_official_preprocessing_reproduces_fixture_input(shared_dir, name):
    ref = np.load(shared_dir / "fixtures" / "parity" / f"{name}.npz")
    image = load_image_rgb(_image_path(shared_dir, ref["data_path"]))
    assert image.shape[:2] == (int(ref["image_height"]), int(ref["image_width"]))
    warped, transform = official_resize(image, int(ref["input_size"]))
    assert warped.dtype == np.uint8
    np.testing.assert_array_equal(transform.center, ref["center"])
    np.testing.assert_allclose(transform.scale, ref["scale"], rtol=0, atol=1e-12)
    net_input = normalize_imagenet(warped)
    assert net_input.shape == ref["input"].shape
    np.testing.assert_allclose(net_input, ref["input"], rtol=0, atol=1e-6)


@pytest.mark.needs_shared
def test_official_inverse_reproduces_get_final_preds_on_every_decode_fixture(shared_dir):
    """refined (input pixels) -> to_image must give the official final rows, for every image and setting."""
    files = sorted((shared_dir / "fixtures" / "decode").glob("*.npz"))
    assert len(files) >= 10
    for f in files:
        ref = np.load(f)
        h, w = int(ref["image_height"]), int(ref["image_width"])
        (w_in, h_in), center, scale = official_input_size((h, w), int(ref["input_size"]))
        assert [w_in, h_in] == list(ref["base_size"]), f.name
        np.testing.assert_array_equal(center, ref["center"])
        warped, transform = official_resize(np.zeros((h, w, 3), np.uint8), int(ref["input_size"]))
        assert warped.shape == (h_in, w_in, 3)
        for setting in ("flip", "noflip"):
            refined = ref[f"{setting}_refined"]
            final = transform.to_image(refined)
            assert final.dtype == refined.dtype == np.float32
            # x, y mapped exactly as the official code; val and tag columns untouched
            np.testing.assert_array_equal(final, ref[f"{setting}_final_full"], err_msg=f"{f.name} {setting}")


@pytest.mark.parametrize("wh, input_size, expected_wh", [
    # spec section 4 examples
    ((640, 427), 256, (384, 256)), ((640, 427), 448, (704, 448)), ((640, 427), 512, (768, 512)),
    ((1920, 1080), 256, (512, 256)), ((1920, 1080), 448, (832, 448)), ((1920, 1080), 512, (960, 512)),
    ((500, 500), 448, (448, 448)),
    # portrait: the width is the short side; 448/480*640 = 597.3 -> 640
    ((480, 640), 448, (448, 640)),
    # exact multiple: 448/448*896 = 896 stays
    ((896, 448), 448, (896, 448)),
])
def test_official_input_size_hand_cases(wh, input_size, expected_wh):
    w, h = wh
    size, center, scale = official_input_size((h, w), input_size)
    assert size == expected_wh
    assert tuple(center) == (int(w / 2 + 0.5), int(h / 2 + 0.5))
    # isotropic zoom s = input_size / short side, as scale[0]*200 = w_in / s
    s = input_size / min(w, h)
    assert scale[0] * 200 == pytest.approx(size[0] / s, rel=1e-12)
    assert scale[1] * 200 == pytest.approx(size[1] / s, rel=1e-12)


def test_official_affine_matches_spec_example():
    """Spec 5.8: 640x427 at XS: forward x_in = 0.59953 x + 0.14988, y_in = 0.59953 y - 0.29977; inverse
    x = 1.66797 x_in - 0.25, y = 1.66797 y_in + 0.5."""
    _, t = official_resize(np.zeros((427, 640, 3), np.uint8), 256)
    m, inv = t.matrix, t.inverse_matrix
    np.testing.assert_allclose([m[0, 0], m[0, 2], m[1, 1], m[1, 2]], [0.59953, 0.14988, 0.59953, -0.29977], atol=2e-5)
    np.testing.assert_allclose([m[0, 1], m[1, 0]], [0, 0], atol=1e-12)
    np.testing.assert_allclose([inv[0, 0], inv[0, 2], inv[1, 1], inv[1, 2]], [1.66797, -0.25, 1.66797, 0.5], atol=2e-5)
    pts = np.random.default_rng(1).uniform(-50, 700, (100, 2))
    np.testing.assert_allclose(t.to_image(t.forward(pts)), pts, atol=1e-9)


def test_official_resize_content_is_centred_on_black():
    """A white portrait 100 x 170 image at 256: zoom 2.56, content 256 x 435.2 centred in a 256 x 448 input
    (448 = 435.2 rounded up to 64) on black. warpAffine samples the source at the inverse affine of the
    output pixel INDEX (the official convention, no half-pixel shift), bilinear against a 0 border."""
    h, w = 170, 100
    img = np.full((h, w, 3), 255, np.uint8)
    warped, t = official_resize(img, 256)
    assert warped.shape == (448, 256, 3)
    (x0, y0), (x1, y1) = t.forward(np.array([[0.0, 0.0], [100.0, 170.0]]))
    assert (x0, x1) == pytest.approx((0, 256), abs=1e-4) and (y0, y1) == pytest.approx((6.4, 441.6), abs=1e-4)
    v = np.arange(448, dtype=float)
    src_y = t.to_image(np.stack([np.full_like(v, 128), v], 1))[:, 1]
    outside = np.maximum(0, np.maximum(-src_y, src_y - (h - 1)))  # distance past the first / last row
    expected = 255 * np.clip(1 - outside, 0, 1)
    np.testing.assert_allclose(warped[:, 128, 0], expected, atol=1.0)
    assert warped[:4].max() == 0 and warped[444:].max() == 0 and (warped[8:440, :253] == 255).all()


# ---- image loading ----------------------------------------------------------------------------

def test_load_image_rgb_is_rgb_and_ignores_nothing_else(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 20, 30  # B, G, R
    cv2.imwrite(str(tmp_path / "c.png"), bgr)
    rgb = load_image_rgb(tmp_path / "c.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 5, 3)
    assert tuple(rgb[0, 0]) == (30, 20, 10)


def test_load_image_rgb_converts_gray_rgba_and_16bit(tmp_path):
    gray = np.arange(0, 240, 16, dtype=np.uint8).reshape(3, 5)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    rgb = load_image_rgb(tmp_path / "g.png")
    assert rgb.shape == (3, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], gray)

    bgra = np.zeros((2, 3, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 0  # fully transparent
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    rgb = load_image_rgb(tmp_path / "a.png")
    assert rgb.shape == (2, 3, 3) and tuple(rgb[1, 2]) == (30, 20, 10)  # alpha dropped, colour kept

    v16 = np.array([0, 255, 256, 4095, 32768, 65280, 65535], np.uint16)
    img16 = np.stack([v16, v16 // 2, v16 // 3], -1)[None]  # B, G, R
    cv2.imwrite(str(tmp_path / "d.png"), img16)
    rgb = load_image_rgb(tmp_path / "d.png")
    assert rgb.dtype == np.uint8
    # 16 -> 8 bits keeps the high byte: full scale stays full scale, no wrap-around
    np.testing.assert_array_equal(rgb[0, :, 2], (v16 >> 8).astype(np.uint8))
    np.testing.assert_array_equal(rgb[0, :, 1], ((v16 // 2) >> 8).astype(np.uint8))
    np.testing.assert_array_equal(rgb[0, :, 0], ((v16 // 3) >> 8).astype(np.uint8))


@pytest.mark.parametrize("content, what", [
    (None, "no such image file"),
    (b"", "empty"),
    (b"<!DOCTYPE html><html><body>404</body></html>", "not an image"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "not an image"),  # a JPEG header and nothing else
])
def test_load_image_rgb_errors_name_the_file(tmp_path, content, what):
    path = tmp_path / "photo.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(LitePoseError) as err:
        load_image_rgb(path)
    assert str(path) in str(err.value) and what in str(err.value)


def test_load_image_rgb_folder_is_an_error(tmp_path):
    with pytest.raises(LitePoseError, match="folder"):
        load_image_rgb(tmp_path)


@pytest.mark.parametrize("byte_order", ["little", "big"])
def test_exif_orientation_is_read_and_applied_only_on_request(exif_jpeg, tmp_path, byte_order):
    stored = np.random.default_rng(0).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", stored)[1].tobytes()
    assert jpeg_exif_orientation(jpeg) == 1                                     # no EXIF at all
    for value in range(1, 9):
        assert jpeg_exif_orientation(exif_jpeg(jpeg, value, byte_order)) == value
    assert jpeg_exif_orientation(exif_jpeg(jpeg, 6, byte_order)[:30]) == 1      # truncated inside the segment
    assert jpeg_exif_orientation(cv2.imencode(".png", stored)[1].tobytes()) == 1
    path = tmp_path / "phone.jpg"
    path.write_bytes(exif_jpeg(jpeg, 6, byte_order))
    as_stored, orientation = load_image(path)
    upright, _ = load_image(path, upright=True)
    assert orientation == 6 and as_stored.shape == (30, 20, 3)
    assert np.array_equal(upright, np.rot90(as_stored, k=-1))                   # 6: turn 90 degrees clockwise
    assert np.array_equal(load_image_rgb(path), as_stored)                      # the official decoding


def _tiff_with_orientation(value: int) -> bytes:
    ifd = (1).to_bytes(2, "little") + (0x0112).to_bytes(2, "little") + (3).to_bytes(2, "little") \
        + (1).to_bytes(4, "little") + value.to_bytes(2, "little") + b"\0\0" + (0).to_bytes(4, "little")
    return b"II" + (42).to_bytes(2, "little") + (8).to_bytes(4, "little") + ifd


def test_png_and_webp_exif_orientation_is_read_too(tmp_path):
    """Phones and editors also write PNG (eXIf chunk) and WebP (EXIF chunk) with an orientation, and OpenCV
    applies it when asked: predict warns about those files as about JPEGs, and --exif-rotate turns them."""
    import zlib

    stored = np.random.default_rng(1).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    png = cv2.imencode(".png", stored)[1].tobytes()
    tiff = _tiff_with_orientation(6)
    chunk = len(tiff).to_bytes(4, "big") + b"eXIf" + tiff + zlib.crc32(b"eXIf" + tiff).to_bytes(4, "big")
    ihdr_end = 8 + 12 + int.from_bytes(png[8:12], "big")
    path = tmp_path / "rotated.png"
    path.write_bytes(png[:ihdr_end] + chunk + png[ihdr_end:])
    as_stored, orientation = load_image(path)
    assert orientation == 6 and np.array_equal(as_stored, stored[..., ::-1])     # BGR written, RGB read
    assert np.array_equal(load_image(path, upright=True)[0], np.rot90(as_stored, k=-1))
    assert exif_orientation(png) == 1

    webp = cv2.imencode(".webp", stored)[1].tobytes()
    payload = b"Exif\0\0" + tiff + b"\0"                     # odd size: the chunk gets a padding byte
    body = webp[12:] + b"EXIF" + len(payload).to_bytes(4, "little") + payload + b"\0"
    assert exif_orientation(b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WEBP" + body) == 6
    assert exif_orientation(webp) == 1


# ---- letterbox ------------------------------------------------------------------------------------

@pytest.mark.parametrize("image_wh, input_hw, resized_wh, offset", [
    ((640, 480), (448, 448), (448, 336), (0, 56)),   # s = 0.7
    ((100, 300), (448, 448), (149, 448), (149, 0)),  # s = 1.4933: 149.33 -> 149, ox = 299 // 2
    ((1000, 1), (448, 448), (448, 1), (0, 223)),     # nh = floor(0.448 + 0.5) = 0 -> at least 1
    ((448, 448), (448, 448), (448, 448), (0, 0)),    # identity
    ((32, 24), (256, 448), (341, 256), (53, 0)),     # upscale: s = min(14, 10.667): 341.33 -> 341, ox = 107 // 2
    ((5, 3), (4, 4), (4, 2), (0, 1)),                # s = 0.8: 2.4 -> 2 rows, oy = 1
])
def test_letterbox_hand_cases(image_wh, input_hw, resized_wh, offset):
    w, h = image_wh
    img = np.full((h, w, 3), 200, np.uint8)
    out, box = letterbox(img, input_hw)
    assert out.shape == tuple(input_hw) + (3,) and out.dtype == np.uint8
    assert box.resized_hw == (resized_wh[1], resized_wh[0]) and box.offset_xy == offset
    ys, xs = np.nonzero(out[..., 0] == 200)
    ox, oy = offset
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (ox, ox + resized_wh[0], oy, oy + resized_wh[1])
    border = np.ones(out.shape[:2], bool)
    border[oy:oy + resized_wh[1], ox:ox + resized_wh[0]] = False
    assert (out[border] == LETTERBOX_FILL_RGB).all()  # the ImageNet mean colour, 0 after normalisation
    # the image corners land on the pasted rectangle's corners
    np.testing.assert_allclose(box.forward(np.array([[0, 0], [w, h]], float)),
                               [[ox, oy], [ox + resized_wh[0], oy + resized_wh[1]]])


def test_letterbox_round_trip_and_columns_pass_through():
    box = Letterbox.fit((427, 640), (448, 448))
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(0, 640, (50, 1)), rng.uniform(0, 427, (50, 1)), rng.uniform(0, 1, (50, 1))], 1)
    back = box.to_image(box.forward(pts))
    np.testing.assert_allclose(back, pts, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(back[:, 2], pts[:, 2])
    # poses (P, J, 3) float32 keep their shape and dtype
    poses = rng.uniform(0, 448, (3, 14, 3)).astype(np.float32)
    mapped = box.to_image(poses)
    assert mapped.shape == poses.shape and mapped.dtype == np.float32
    np.testing.assert_array_equal(mapped[..., 2], poses[..., 2])


def test_letterbox_mapping_agrees_with_the_resampling():
    """The corner convention is the one cv2.INTER_LINEAR uses: on a horizontal ramp image whose value is
    the source pixel-centre x coordinate, the output pixel centre (U + 0.5) maps back to value + 0.5."""
    w, h = 300, 120
    ramp = np.tile(np.arange(w, dtype=np.float32), (h, 1))
    img = np.stack([ramp, ramp, ramp], -1)
    for input_hw in [(448, 448), (96, 160), (256, 1024)]:  # down- and up-scaling
        out, box = letterbox(img, input_hw)
        (nh, nw), (ox, oy) = box.resized_hw, box.offset_xy
        row = out[oy + nh // 2]
        us = np.arange(ox + 2, ox + nw - 2)  # away from the clamped edges
        centres = np.stack([us + 0.5, np.full(us.shape, oy + nh / 2)], 1)
        x_img = box.to_image(centres)[:, 0]
        np.testing.assert_allclose(row[us, 0] + 0.5, x_img, atol=2e-3)


def test_letterbox_rejects_a_mismatched_image():
    box = Letterbox.fit((10, 20), (32, 32))
    with pytest.raises(ValueError):
        box.apply(np.zeros((11, 20, 3), np.uint8))
