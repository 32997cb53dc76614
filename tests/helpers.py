"""Assertions and tool runners shared by the tests."""
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_tool(*args):
    """Run a repository tool as a user would, from the repository root."""
    return subprocess.run([sys.executable, '-W', 'ignore', *args], cwd=ROOT,
                          capture_output=True, text=True)


def check_tool(*args):
    result = run_tool(*args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def assert_close_to_max(actual, expected, rtol, what=''):
    """|actual - expected| <= rtol * max|expected| (relative to the largest magnitude)."""
    err = (actual.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    assert err <= rtol * scale, f'{what}: max diff {err:.3g} > {rtol:g} * {scale:.3g}'


def training_twin(deploy_config):
    """The training config that a config under deploy/ is the fused form of."""
    return deploy_config.replace('/deploy/', '/').replace('-deploy_', '_')
