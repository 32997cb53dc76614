"""Checkpoint files: one safe reader with one-line errors, outputs never overwritten
without --force and never left half written."""
import glob
import os
import os.path as osp
import random
import re

import pytest
import torch

from repmobile_mm.engine.checkpoint import read_checkpoint, save_atomically, write_atomically
from repmobile_mm.errors import CheckpointError, OutputExistsError
from tests.helpers import ROOT, python_output, run_tool

DIGITS = osp.join(ROOT, 'classification/configs/repvit/repvit-m0.9_1xb64_digits.py')


def bad_checkpoints(folder):
    """Kind -> (path, what the message must say)."""
    good = osp.join(folder, 'good.pth')
    torch.save({'state_dict': {'w': torch.randn(64, 64)}}, good)
    with open(good, 'rb') as f:
        content = f.read()
    # fixed garbage: seed 2 ends in the unpickler's stack (IndexError), 20 in its memo
    # (KeyError), 0 in its opcode check (UnpicklingError)
    files = {'truncated': content[:len(content) // 2],
             **{kind: random.Random(seed).randbytes(2048)
                for kind, seed in (('garbage', 0), ('stack', 2), ('memo', 20))}}
    paths = {}
    for kind, data in files.items():
        paths[kind] = osp.join(folder, f'{kind}.pth')
        with open(paths[kind], 'wb') as f:
            f.write(data)
    paths['unsafe'] = osp.join(folder, 'unsafe.pth')
    torch.save({'state_dict': {}, 'hook': print}, paths['unsafe'])  # a global: the function print
    paths['missing'] = osp.join(folder, 'missing.pth')
    messages = {'truncated': 'is truncated or corrupted', 'garbage': 'corrupted',
                'stack': 'corrupted', 'memo': 'corrupted',
                'unsafe': 'carries the global print',
                'missing': 'checkpoint not found'}
    return {kind: (paths[kind], messages[kind]) for kind in messages}


def test_read_checkpoint_names_the_file_and_the_problem(tmp_path):
    for kind, (path, message) in bad_checkpoints(str(tmp_path)).items():
        with pytest.raises(CheckpointError) as err:
            read_checkpoint(path)
        text = str(err.value)
        assert path in text and message in text and '\n' not in text, (kind, text)


def test_every_checkpoint_read_goes_through_read_checkpoint():
    """No other torch.load in the package or the tools (the tests may read as they like)."""
    sources = glob.glob(osp.join(ROOT, 'repmobile_mm', '**', '*.py'), recursive=True) + \
        glob.glob(osp.join(ROOT, 'tools', '**', '*.py'), recursive=True)
    assert len(sources) > 20
    readers = []
    for path in sources:
        with open(path) as f:
            if re.search(r'torch\.load\(', f.read()):
                readers.append(osp.relpath(path, ROOT))
    assert readers == ['repmobile_mm/engine/checkpoint.py']


@pytest.mark.slow
@pytest.mark.parametrize('tool,kind', [
    (['tools/test.py', DIGITS], 'truncated'),
    (['tools/reparameterize_model.py', DIGITS], 'unsafe'),
    (['tools/deployment/pytorch2onnx.py', DIGITS], 'garbage'),
    (['tools/model_converters/convert_official.py'], 'truncated'),
    (['tools/train.py', DIGITS, '--resume'], 'unsafe'),
], ids=['test', 'reparameterize', 'onnx', 'convert', 'resume'])
def test_tools_turn_a_bad_checkpoint_into_one_line(tmp_path, tool, kind):
    path, message = bad_checkpoints(str(tmp_path))[kind]
    out = str(tmp_path / 'out')
    outputs = {'tools/test.py': [], 'tools/train.py': ['--work-dir', str(tmp_path / 'work')]}
    result = run_tool(*tool, path, *outputs.get(tool[0], [out]))
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert path in last and message in last, result.stderr[-3000:]
    assert not osp.exists(out)


def test_writes_are_atomic_and_keep_existing_files(tmp_path):
    path = str(tmp_path / 'out.pth')

    def interrupted(partial):
        with open(partial, 'wb') as f:
            f.write(b'half a file')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, interrupted)
    assert os.listdir(tmp_path) == []  # neither the file nor its temporary part
    save_atomically({'a': torch.ones(2)}, path)
    with pytest.raises(OutputExistsError,
                       match='exists: choose another output path, or pass --force'):
        save_atomically({'a': torch.zeros(2)}, path)
    assert torch.equal(read_checkpoint(path)['a'], torch.ones(2))
    save_atomically({'a': torch.zeros(2)}, path, force=True)
    assert torch.equal(read_checkpoint(path)['a'], torch.zeros(2))
    assert os.listdir(tmp_path) == ['out.pth']


def test_a_folder_output_is_replaced_whole_only_with_force(tmp_path):
    """What Core ML's .mlpackage folders get: all or nothing, the old one kept unless
    --force, and then no file of it left."""
    path = str(tmp_path / 'model.mlpackage')

    def package(files):
        def write(partial):
            os.makedirs(partial)
            for name in files:
                (tmp_path / partial / name).write_text(name)
        return write

    write_atomically(path, package(['old', 'weights']))
    with pytest.raises(OutputExistsError, match='exists'):
        write_atomically(path, package(['new']))
    assert sorted(os.listdir(path)) == ['old', 'weights']
    write_atomically(path, package(['new']), force=True)
    assert os.listdir(path) == ['new']
    assert os.listdir(tmp_path) == ['model.mlpackage']  # no staging folder left


@pytest.mark.slow
def test_fuse_tool_refuses_an_existing_output_before_any_work(tmp_path):
    dst = tmp_path / 'fused.pth'
    dst.write_bytes(b'keep me')
    result = run_tool('tools/reparameterize_model.py', DIGITS, str(tmp_path / 'missing.pth'),
                      str(dst))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == \
        f'{dst} exists: choose another output path, or pass --force to replace it'
    assert dst.read_bytes() == b'keep me'


def test_read_checkpoint_leaves_the_process_allow_list_as_it_found_it(tmp_path):
    """read_checkpoint allows mmengine's globals for its own read only: a process that
    allowed nothing still allows nothing after it, and one that allowed them itself
    still allows them."""
    path = str(tmp_path / 'mmengine.pth')
    code = (
        'import sys, torch\n'
        'from mmengine.logging.history_buffer import HistoryBuffer\n'
        'from repmobile_mm.engine.checkpoint import mmengine_checkpoint_globals, '
        'read_checkpoint\n'
        'buffer = HistoryBuffer()\nbuffer.update(1.5)\n'
        'torch.save({"message_hub": buffer}, sys.argv[1])\n'
        'before = list(torch.serialization.get_safe_globals())\n'
        'read_checkpoint(sys.argv[1])\n'
        'print(torch.serialization.get_safe_globals() == before)\n'
        'torch.serialization.add_safe_globals(mmengine_checkpoint_globals())\n'
        'read_checkpoint(sys.argv[1])\n'
        'torch.load(sys.argv[1], weights_only=True)  # still allowed process-wide\n'
        'print("loaded")\n')
    assert python_output(code, path).split() == ['True', 'loaded']


def test_a_checkpoint_save_stopped_midway_leaves_no_file_under_its_name(tmp_path, monkeypatch):
    """mmengine's save_checkpoint, its write stopped halfway by a full disk: mmengine's
    own local backend leaves a truncated file under the checkpoint's name (which
    ``last_checkpoint`` or a later --resume would take); the one a training run
    registers (write_checkpoints_atomically) leaves nothing, not even its staging."""
    import builtins

    from mmengine.fileio import LocalBackend, register_backend
    from mmengine.fileio.backends.registry_utils import prefix_to_backends
    from mmengine.runner.checkpoint import save_checkpoint

    from repmobile_mm.engine.checkpoint import write_checkpoints_atomically
    real_open = builtins.open

    class FullDisk:
        def __init__(self, file):
            self.file = file

        def write(self, data):
            self.file.write(data[:len(data) // 2])
            raise OSError(28, 'No space left on device')

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    def full_disk_open(file, mode='r', *args, **kwargs):
        opened = real_open(file, mode, *args, **kwargs)
        return FullDisk(opened) if 'w' in mode and 'b' in mode else opened

    checkpoint = {'state_dict': {'w': torch.randn(1000)}, 'meta': {'epoch': 3}}
    registered = prefix_to_backends['']
    try:
        for backend, name in ((LocalBackend, 'plain.pth'), (None, 'atomic.pth')):
            if backend is None:
                write_checkpoints_atomically()
            else:
                register_backend('local', backend, force=True, prefixes='')
            with monkeypatch.context() as patch:
                patch.setattr(builtins, 'open', full_disk_open)
                with pytest.raises(OSError, match='No space left'):
                    save_checkpoint(checkpoint, str(tmp_path / name))
    finally:
        register_backend('local', registered, force=True, prefixes='')
    assert 0 < os.path.getsize(tmp_path / 'plain.pth')  # the bug the atomic backend avoids
    with pytest.raises(CheckpointError, match='truncated or corrupted'):
        read_checkpoint(str(tmp_path / 'plain.pth'))
    assert os.listdir(tmp_path) == ['plain.pth']
