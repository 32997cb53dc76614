"""Assertions shared by the tests."""


def assert_close_to_max(actual, expected, rtol, what=''):
    """|actual - expected| <= rtol * max|expected| (relative to the largest magnitude)."""
    err = (actual.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    assert err <= rtol * scale, f'{what}: max diff {err:.3g} > {rtol:g} * {scale:.3g}'
