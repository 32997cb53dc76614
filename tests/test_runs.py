"""Training runs as users start them: several processes on this CPU-only machine
(tools/dist_train.sh: torchrun, gloo) and a run killed and resumed."""
import json
import os
import os.path as osp
import re
import socket
import subprocess
import sys
import time

import pytest
import torch

from repmobile_mm.apis.model_io import read_state_dict
from repmobile_mm.apis.runner import load_config
from repmobile_mm.engine.checkpoint import read_checkpoint
from tests.helpers import (BAD_FILES, ROOT, SMALL_RUNS, check_tool, corrupt_copy,
                           make_folder_dataset, refusal, run_tool)

# RepViT's digits config: no dropout, whose masks a resumed run would draw anew
DIGITS = osp.join(ROOT, 'classification/configs/repvit/repvit-m0.9_1xb64_digits.py')
# The parameter update of two processes x 3 images against one process x 6 (the same
# images per step, backbone BatchNorms frozen, plain SGD), as a share of the update's
# norm. Measured on this machine (2026-11-25): 0.19, from the head's BatchNorm1d, which
# normalizes over 3 images per process instead of 6; with DDP's gradient
# synchronization switched off (no_sync) the same runs differ by 0.82.
UPDATE_TOLERANCE = 0.35


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def write_config(path, data, batch_size, epochs=1, sgd=True, norm_eval=False):
    """The digits config on a tiny set, deterministic (no crop, no shuffle), saving
    every epoch; plain SGD without a schedule, or the config's AdamW and schedule."""
    optimizer = ("optim_wrapper = dict(_delete_=True, optimizer=dict(type='SGD', lr=0.1))\n"
                 'param_scheduler = []' if sgd else '')
    with open(path, 'w') as f:
        f.write(f'''_base_ = {DIGITS!r}
model = dict(backbone=dict(norm_eval={norm_eval}), head=dict(num_classes=3))
data_preprocessor = dict(num_classes=3)
train_dataloader = dict(
    batch_size={batch_size}, num_workers=0, persistent_workers=False,
    sampler=dict(shuffle=False),
    dataset=dict(data_root={data!r},
                 pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root={data!r}))
test_dataloader = val_dataloader
{optimizer}
train_cfg = dict(max_epochs={epochs}, val_interval={epochs})
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts={epochs}))
''')
    return str(path)


def initial_weights(config, work_dir):
    """The parameters both runs start from (mmengine seeds before building the model);
    not the buffers: each process keeps BatchNorm running statistics of its own."""
    from mmengine.runner import Runner
    cfg = load_config(config)
    cfg.work_dir = work_dir
    model = Runner.from_cfg(cfg).model
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.slow
def test_a_killed_run_resumes_where_an_uninterrupted_one_is(tmp_path):
    """Kill a run once its first checkpoint is complete, resume it with --resume, and
    compare its end with an uninterrupted run: epoch, iteration, learning rate,
    optimizer state and weights."""
    data = str(tmp_path / 'data')
    make_folder_dataset(data)  # 2 iterations of 6 images per epoch
    config = write_config(tmp_path / 'config.py', data, 6, epochs=4, sgd=False)
    whole, killed = str(tmp_path / 'whole'), str(tmp_path / 'killed')
    check_tool('tools/train.py', config, '--work-dir', whole)

    command = [sys.executable, '-W', 'ignore', 'tools/train.py', config, '--work-dir', killed]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    # mmengine writes last_checkpoint once a checkpoint file is complete
    while not osp.isfile(osp.join(killed, 'last_checkpoint')) and time.time() < deadline:
        assert process.poll() is None, 'the run ended before its first checkpoint'
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert not osp.isfile(osp.join(killed, 'epoch_4.pth')), 'killed too late to tell'
    result = check_tool('tools/train.py', config, '--work-dir', killed, '--resume')
    assert 'resumed epoch: ' in result.stdout + result.stderr

    ends = [read_checkpoint(osp.join(run, 'epoch_4.pth')) for run in (whole, killed)]
    for end in ends:
        assert (end['meta']['epoch'], end['meta']['iter']) == (4, 8)
    (expected, resumed) = ends
    assert resumed['message_hub']['runtime_info']['iter'] == \
        expected['message_hub']['runtime_info']['iter']
    assert resumed['param_schedulers'] == expected['param_schedulers']
    lr = [group['lr'] for group in resumed['optimizer']['param_groups']]
    assert lr == [group['lr'] for group in expected['optimizer']['param_groups']]
    moments = [(k, name) for k, state in expected['optimizer']['state'].items()
               for name in ('exp_avg', 'exp_avg_sq')]
    assert len(moments) > 0
    for key, name in moments:
        torch.testing.assert_close(resumed['optimizer']['state'][key][name],
                                   expected['optimizer']['state'][key][name])
    assert resumed['state_dict'].keys() == expected['state_dict'].keys()
    for key, value in expected['state_dict'].items():
        torch.testing.assert_close(resumed['state_dict'][key], value, msg=key)


def preempted_config(path, base, iteration, to_launcher, hook='SendSigtermAt'):
    """``base`` with the stand-in scheduler sending SIGTERM after ``iteration`` (or
    another hook of tests/signal_hook.py; beside the base's own custom hooks)."""
    options = dict(to_launcher=to_launcher) if hook == 'SendSigtermAt' else {}
    cfg = load_config(base).to_dict()
    hooks = cfg.get('custom_hooks', []) + [dict(type=hook, iteration=iteration, **options)]
    imports = cfg['custom_imports']['imports'] + ['tests.signal_hook']
    with open(path, 'w') as f:
        f.write(f"""_base_ = {base!r}
custom_imports = dict(imports={imports!r}, allow_failed_imports=False)
custom_hooks = {hooks!r}
""")
    return str(path)


def iteration_based(config):
    """The config's loop as iterations (12), without periodic checkpoints, on an
    infinite sampler as the detection and segmentation configs have it (mmengine waits
    2 s each time another sampler's pass ends)."""
    with open(config, 'a') as f:
        f.write("train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=12, "
                "val_interval=100)\ndefault_hooks = dict(checkpoint=dict(by_epoch=False, "
                "interval=100))\n"
                "train_dataloader['sampler'] = dict(type='InfiniteSampler', shuffle=False)\n")
    return config


@pytest.mark.slow
def test_two_processes_train_what_one_process_trains_and_stop_together(tmp_path):
    """Two processes on this CPU (tools/dist_train.sh: torchrun, gloo) train what one
    process trains: after the first epoch (2 iterations of 2 x 3 images, plain SGD,
    backbone BatchNorms frozen) their update is one process's (6 images an iteration)
    within UPDATE_TOLERANCE, and tools/test.py scores their checkpoint.

    Then torchrun gets SIGTERM mid-epoch (a scheduler's preemption) and passes it on: both
    processes stop after the same iteration, rank 0 saves and names the checkpoint, the
    exit status is not 0. mmengine's epoch loop cannot start mid-epoch: the message says
    which iterations repeat, and the resumed run (in one process, as a job given fewer
    nodes resumes) ends one iteration later than an uninterrupted one (9 for 4 epochs of
    2) when it stopped mid-epoch."""
    data = str(tmp_path / 'data')
    make_folder_dataset(data)  # 12 images: 2 iterations of 2 x 3 an epoch
    base = write_config(tmp_path / 'base.py', data, 3, epochs=4, norm_eval=True)
    preempted = preempted_config(tmp_path / 'preempted.py', base, 3, to_launcher=True)
    work = str(tmp_path / 'work')
    result = subprocess.run(['bash', 'tools/dist_train.sh', preempted, '2', '--work-dir', work],
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, PORT=str(free_port()), PYTHON=sys.executable,
                                     PYTHONWARNINGS='ignore'))
    log = result.stdout + result.stderr
    assert 'gloo on CPU, 2 processes' in log, log[-3000:]
    two = read_state_dict(osp.join(work, 'epoch_1.pth'))  # before the resumed run's saves
    check_tool('tools/test.py', base, osp.join(work, 'epoch_1.pth'), '--work-dir',
               str(tmp_path / 'test'), '--out', str(tmp_path / 'metrics.json'))
    assert osp.isfile(tmp_path / 'metrics.json')
    one_process = write_config(tmp_path / 'one.py', data, 6, norm_eval=True)
    check_tool('tools/train.py', one_process, '--work-dir', str(tmp_path / 'one'))
    one = read_state_dict(osp.join(tmp_path, 'one', 'epoch_1.pth'))
    initial = initial_weights(one_process, str(tmp_path / 'initial'))
    one, two = (torch.cat([(run[k].double() - initial[k].double()).flatten() for k in initial])
                for run in (one, two))
    assert one.norm() > 0
    assert (two - one).norm() <= UPDATE_TOLERANCE * one.norm(), \
        f'{((two - one).norm() / one.norm()).item():.3g}'

    assert result.returncode != 0
    stopped = re.findall(r'SIGTERM received: stopped after iteration (\d+) \(epoch (\d+)\), '
                         r'saved (\S+); continue with --resume(.*)', log)
    assert len(stopped) == 2 and stopped[0] == stopped[1], log[-3000:]  # one line a process
    done, epoch, path, repeated = stopped[0]
    done, epoch = int(done), int(epoch)
    # in an epoch's last iteration (the signal took longer than one), the epoch ends first
    assert 3 <= done < 8 and path == osp.join(
        work, f'epoch_{epoch}.pth' if done % 2 == 0 else f'iter_{done}.pth')
    assert repeated == ('' if done % 2 == 0 else
                        f'; epoch {epoch} restarts there, repeating its first 1 iterations')
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read() == path
    assert read_checkpoint(path)['meta']['iter'] == done
    # resumed in one process (this one) with the same 6 images an iteration
    check_tool('tools/train.py', base, '--work-dir', work, '--resume', '--cfg-options',
               'train_dataloader.batch_size=6')
    end = read_checkpoint(osp.join(work, 'epoch_4.pth'))
    assert (end['meta']['epoch'], end['meta']['iter']) == (4, 8 + done % 2)


def test_sigterm_in_an_epochs_last_iteration_stops_after_that_epoch(tmp_path):
    """SIGTERM in the last iteration of epoch 1 (of 2 iterations): the run stops once
    the epoch is counted and saves epoch_1.pth, and the resumed run repeats nothing:
    it ends with the 4 iterations of 2 epochs."""
    data = str(tmp_path / 'data')
    make_folder_dataset(data)  # 2 iterations of 6 images an epoch
    base = write_config(tmp_path / 'base.py', data, 6, epochs=2)
    preempted = preempted_config(tmp_path / 'preempted.py', base, 2, to_launcher=False)
    work = str(tmp_path / 'work')
    # the signal goes to the tests' process, whose handler PreemptionHook is while it trains
    message = refusal('tools/train.py', preempted, '--work-dir', work)
    assert message == (f'SIGTERM received: stopped after iteration 2 (epoch 1), saved '
                       f'{work}/epoch_1.pth; continue with --resume')
    meta = read_checkpoint(osp.join(work, 'epoch_1.pth'))['meta']
    assert (meta['epoch'], meta['iter']) == (1, 2)
    check_tool('tools/train.py', base, '--work-dir', work, '--resume')
    meta = read_checkpoint(osp.join(work, 'epoch_2.pth'))['meta']
    assert (meta['epoch'], meta['iter']) == (2, 4)


@pytest.mark.slow
def test_sigterm_resumes_an_iteration_loop_where_an_uninterrupted_run_is(tmp_path):
    """SIGTERM after iteration 5 of 12 (an iteration-based loop, as the detection and
    segmentation configs run): the checkpoint it saves resumes at iteration 5, the data
    order kept and the random draws of stochastic depth too (RandomStateHook), and ends
    with the weights of an uninterrupted run."""
    data = str(tmp_path / 'data')
    make_folder_dataset(data)  # 2 iterations of 6 images a pass
    base = iteration_based(write_config(tmp_path / 'base.py', data, 6, norm_eval=True))
    with open(base, 'a') as f:
        f.write("model['backbone']['drop_path_rate'] = 0.5\n")
    preempted = preempted_config(tmp_path / 'preempted.py', base, 5, to_launcher=False)
    whole, work = str(tmp_path / 'whole'), str(tmp_path / 'work')
    check_tool('tools/train.py', base, '--work-dir', whole)
    # the signal goes to the tests' process, whose handler PreemptionHook is while it trains
    message = refusal('tools/train.py', preempted, '--work-dir', work)
    assert message == (f'SIGTERM received: stopped after iteration 5 (epoch 1), saved '
                       f'{work}/iter_5.pth; continue with --resume')
    check_tool('tools/train.py', base, '--work-dir', work, '--resume')
    expected, resumed = (read_checkpoint(osp.join(run, 'iter_12.pth')) for run in (whole, work))
    assert resumed['meta']['iter'] == expected['meta']['iter'] == 12
    assert resumed['state_dict'].keys() == expected['state_dict'].keys()
    for key, value in expected['state_dict'].items():
        torch.testing.assert_close(resumed['state_dict'][key], value, msg=key)


def test_a_run_stopped_by_an_error_gives_the_signal_handlers_back(tmp_path):
    """PreemptionHook takes SIGTERM and SIGINT while a run trains; a run that stops with
    an exception (here in the tests' process) leaves the process its own handlers."""
    import signal
    data = str(tmp_path / 'data')
    make_folder_dataset(data)
    config = preempted_config(tmp_path / 'failing.py',
                              write_config(tmp_path / 'base.py', data, 6), 1, False,
                              hook='RaiseAt')
    before = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)]
    result = run_tool('tools/train.py', config, '--work-dir', str(tmp_path / 'work'))
    assert result.returncode == 1 and 'stand-in failure after iteration 1' in result.stderr
    assert [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)] == before


@pytest.mark.slow
def test_resume_falls_back_past_an_unreadable_last_checkpoint(tmp_path):
    """--resume with the checkpoint last_checkpoint names truncated (a save cut short
    before writes were atomic): one warning naming both files, the run continues from
    the newest readable one; with none readable, one line."""
    data = str(tmp_path / 'data')
    make_folder_dataset(data)  # 2 iterations of 6 images per epoch
    work = str(tmp_path / 'work')
    check_tool('tools/train.py', write_config(tmp_path / 'two.py', data, 6, epochs=2),
               '--work-dir', work)
    first, last = (osp.join(work, f'epoch_{e}.pth') for e in (1, 2))
    with open(last, 'r+b') as f:
        f.truncate(100)
    longer = write_config(tmp_path / 'three.py', data, 6, epochs=3)
    result = check_tool('tools/train.py', longer, '--work-dir', work, '--resume')
    log = result.stdout + result.stderr
    assert f'--resume: {last} is truncated or corrupted' in log, log[-3000:]
    assert f'resuming from {first}, the newest readable checkpoint' in log
    assert 'resumed epoch: 1' in log
    end = read_checkpoint(osp.join(work, 'epoch_3.pth'))
    assert (end['meta']['epoch'], end['meta']['iter']) == (3, 6)
    for epoch in (1, 2, 3):
        with open(osp.join(work, f'epoch_{epoch}.pth'), 'r+b') as f:
            f.truncate(100)
    message = refusal('tools/train.py', longer, '--work-dir', work, '--resume')
    assert message.startswith(f'--resume: no readable checkpoint in {work}'), message


@pytest.mark.slow
@pytest.mark.parametrize('task', sorted(SMALL_RUNS))
def test_two_processes_on_cpu_train_detectors_and_segmentors(tmp_path, task, request):
    """Three iterations in two processes (the detector's SyncBN layers as BatchNorm), on
    training data with a corrupt image that ``skip_bad_samples`` skips (and logs), and
    SIGTERM to torchrun after the first iteration: both processes stop after the same
    iteration and save; resumed (in one process), the run ends at iteration 3 with a
    checkpoint that tools/test.py evaluates: the detector's with tools/dist_test.sh in
    two processes (the metrics written once), the segmentor's in one (the script is the
    same for every task)."""
    data = request.getfixturevalue('shapes_data' if task == 'detection' else 'scenes_data')
    options = ['--cfg-options', 'train_cfg.max_iters=3', 'default_hooks.checkpoint.interval=3',
               'train_dataloader.batch_size=2']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [f'{loader}.dataset.data_root={data}', f'{loader}.num_workers=0',
                    f'{loader}.persistent_workers=False']
    if task == 'detection':
        ann = data + 'annotations/instances_val2017.json'
        options += [f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}']
    training, bad = corrupt_copy(data, BAD_FILES[task][0], tmp_path / 'data')
    # no validation at the end of training: the test below evaluates the checkpoint
    train = [*options, f'train_dataloader.dataset.data_root={training}',
             'skip_bad_samples.max_fraction=0.25', 'val_cfg=None', 'val_dataloader=None',
             'val_evaluator=None']
    config, work_dir = osp.join(ROOT, SMALL_RUNS[task]), str(tmp_path / 'work')
    preempted = preempted_config(tmp_path / 'preempted.py', config, 1, to_launcher=True)
    result = run_tool('tools/dist_train.sh', preempted, '2', '--work-dir', work_dir, *train,
                      env=dict(os.environ, PORT=str(free_port())))
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert 'gloo on CPU, 2 processes; SyncBN layers run as BatchNorm' in log, log[-3000:]
    stopped = re.findall(r'SIGTERM received: stopped after iteration (\d) \(epoch 1\), saved '
                         r'(\S+); continue with --resume$', log, re.MULTILINE)
    assert len(stopped) == 2 and stopped[0] == stopped[1], log[-3000:]  # one line a process
    assert stopped[0][1] == osp.join(work_dir, f'iter_{stopped[0][0]}.pth')
    assert re.search(rf'skipped sample \d \([^)]*{re.escape(bad)}[^)]*\): ', log), log[-3000:]
    check_tool('tools/train.py', config, '--work-dir', work_dir, '--resume', *train)
    out = str(tmp_path / 'metrics.json')
    test = ['--work-dir', str(tmp_path / 'test'), '--out', out, *options]
    if task == 'detection':
        result = check_tool('tools/dist_test.sh', config, osp.join(work_dir, 'iter_3.pth'), '2',
                            *test, env=dict(os.environ, PORT=str(free_port())))
        assert 'gloo on CPU, 2 processes' in result.stdout + result.stderr
    else:
        check_tool('tools/test.py', config, osp.join(work_dir, 'iter_3.pth'), *test)
    with open(out) as f:
        assert ('coco/bbox_mAP' if task == 'detection' else 'mIoU') in json.load(f)


def srun_env(tmp_path):
    """The environment of a SLURM script with a stand-in srun that prints the arguments
    it is given."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text('#!/usr/bin/env bash\nprintf \'%s\\n\' "$@"\n')
    (bin_dir / 'srun').chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", GPUS='16',
                GPUS_PER_NODE='8', CPUS_PER_TASK='4', SRUN_ARGS='--exclusive')


SRUN = ['-p', 'gpu', '--job-name=repvit', '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
        '--cpus-per-task=4', '--kill-on-bad-exit=1', '--exclusive', 'python', '-u']


@pytest.mark.parametrize('work_dir', [[], ['work']], ids=['default-work-dir', 'work-dir'])
def test_slurm_train_passes_the_job_to_srun(tmp_path, work_dir):
    result = check_tool('tools/slurm_train.sh', 'gpu', 'repvit', DIGITS, *work_dir, '--amp',
                        env=srun_env(tmp_path))
    assert result.stdout.splitlines() == [
        *SRUN[:8], '--signal=TERM@300', *SRUN[8:], osp.join(ROOT, 'tools/train.py'), DIGITS,
        '--launcher', 'slurm',
        *(['--work-dir', *work_dir] if work_dir else []), '--amp']


def test_slurm_test_passes_the_job_to_srun(tmp_path):
    result = check_tool('tools/slurm_test.sh', 'gpu', 'repvit', DIGITS, 'model.pth', '--out',
                        'metrics.json', env=srun_env(tmp_path))
    assert result.stdout.splitlines() == [
        *SRUN, osp.join(ROOT, 'tools/test.py'), DIGITS, 'model.pth', '--launcher', 'slurm',
        '--out', 'metrics.json']


@pytest.mark.parametrize('config', [
    'classification/configs/_base_/digits_1xb64.py', *SMALL_RUNS.values()])
def test_small_runs_save_often_enough_to_resume(config):
    cfg = load_config(osp.join(ROOT, config)) if '_base_' not in config else \
        __import__('mmengine').Config.fromfile(osp.join(ROOT, config))
    hook = cfg.default_hooks.checkpoint
    if cfg.train_cfg.get('by_epoch', True) and 'max_epochs' in cfg.train_cfg:
        assert hook.interval == 1
    else:
        assert hook.interval <= cfg.train_cfg.max_iters // 3
    assert 1 <= hook.max_keep_ckpts <= 3
