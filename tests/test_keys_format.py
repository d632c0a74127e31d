import hashlib
import math
import string

from llm_gateway.keys import format as keys


def test_generated_key_has_the_documented_shape_and_256_bits():
    new = keys.generate()
    assert new.raw.startswith(f"sk-{new.prefix}-")
    secret = new.raw[len(f"sk-{new.prefix}-") :]
    assert len(secret) == 43 and set(secret) <= set(string.ascii_letters + string.digits + "-_")
    assert len(secret) * math.log2(64) >= 256
    assert len(new.prefix) == keys.PREFIX_HEX_CHARS and set(new.prefix) <= set("0123456789abcdef")


def test_digest_is_sha256_of_the_whole_key_and_never_the_key():
    new = keys.generate()
    assert new.digest == hashlib.sha256(new.raw.encode()).hexdigest()
    assert new.raw not in new.digest


def test_keys_are_unique():
    assert len({keys.generate().raw for _ in range(200)}) == 200


def test_prefix_of_accepts_only_generated_keys():
    new = keys.generate()
    assert keys.prefix_of(new.raw) == new.prefix
    assert keys.prefix_of("sk-ABCDEF12-" + "a" * 43) is None  # upper-case prefix
    assert keys.prefix_of(new.raw + "x") is None
    assert keys.prefix_of("my-static-key") is None
    assert keys.prefix_of("") is None


def test_digests_equal():
    assert keys.digests_equal(keys.digest("a"), keys.digest("a"))
    assert not keys.digests_equal(keys.digest("a"), keys.digest("b"))
