"""The demo's stages (repmobile_mm.apis.demo) on tiny settings, so that a change that
breaks a journey fails the suite without running the whole demo."""
import dataclasses
import json
import os.path as osp
from functools import partial

import pytest

from repmobile_mm.apis import demo
from repmobile_mm.errors import ConfigError, DemoFloorError, ExportError
from .helpers import check_tool, make_folder_dataset


def tiny_options(data):
    return {'train_dataloader.dataset.data_root': data,
            'val_dataloader.dataset.data_root': data,
            'test_dataloader.dataset.data_root': data,
            'train_dataloader.batch_size': 6, 'train_cfg.max_epochs': 1,
            'model.head.num_classes': 3, 'data_preprocessor.num_classes': 3}


def tiny_journey(data, make_data):
    return dataclasses.replace(demo.JOURNEYS['classification'], data_root=data,
                               make_data=make_data, images=osp.join(data, 'val/*/*.png'))


@pytest.mark.slow
def test_a_journey_runs_every_stage_and_compares_both_forms(tmp_path, capsys):
    data, work_dir = str(tmp_path / 'data'), str(tmp_path / 'work' / 'digits')
    picture = str(tmp_path / 'work' / 'digits.png')
    journey = tiny_journey(data, partial(make_folder_dataset, data))
    report = demo.run_journey(journey, work_dir, picture, tiny_options(data))
    lines = report.lines

    console = capsys.readouterr().out
    for name in ('data', 'train', 'fuse', 'test (training)', 'test (fused)',
                 'picture (inferencer)', 'latency'):
        assert f'  {name:<24} done in' in console, console
    # each stage's output went to its log, not to the console
    with open(osp.join(work_dir, 'train.log')) as f:
        assert 'Epoch(train) [1][2/2]' in f.read()
    assert 'Epoch(train)' not in console
    with open(osp.join(work_dir, 'fuse.log')) as f:
        assert 'the outputs differ by at most' in f.read()
    assert osp.getsize(picture) > 0
    scores = []
    for form in ('training', 'fused'):
        with open(osp.join(work_dir, f'test_{form}.json')) as f:
            scores.append(json.load(f))
    assert scores[0] == scores[1] and 'accuracy/top1' in scores[0]
    rows = {line.split()[0]: line.split() for line in lines[3:5]}
    assert set(rows) == {'training', 'fused'}
    assert float(rows['training'][1]) == pytest.approx(scores[0]['accuracy/top1'], abs=1e-3)
    assert rows['training'][1] == rows['fused'][1]
    top1 = scores[0]['accuracy/top1']  # 1 epoch on 12 images: below the floor, or not
    assert lines[5:] == [f'  floor: top-1 % >= 98.3: {"met" if top1 >= 98.3 else "NOT MET"}']
    assert report.missed == ([] if top1 >= 98.3 else
                             [f'{journey.title}: top-1 % {top1:.3f} < 98.3'])
    assert lines[1].startswith('  trained 1 epoch in ')
    assert report.checkpoint == osp.join(work_dir, 'epoch_1.pth')

    # a journey whose backbone starts from the checkpoint of this one
    work_dir = str(tmp_path / 'work' / 'chained')
    demo.run_journey(journey, work_dir, picture, tiny_options(data),
                     backbone_checkpoint=report.checkpoint)
    with open(osp.join(work_dir, 'train.log')) as f:
        assert f'Loads checkpoint by repmobile_mm backend from path: {report.checkpoint}' \
            in f.read()


def test_a_failing_stage_shows_the_end_of_its_log(tmp_path, capsys):
    data = str(tmp_path / 'data')
    journey = tiny_journey(data, lambda: print('wrote nothing'))  # the data stage fails to
    with pytest.raises(ConfigError, match='data_root'):
        demo.run_journey(journey, str(tmp_path / 'work'), str(tmp_path / 'work.png'),
                         tiny_options(data))
    console = capsys.readouterr().out
    assert f"train failed; full output: {tmp_path / 'work' / 'train.log'}" in console


@pytest.mark.slow
def test_backbone_table_checks_and_times_both_forms(monkeypatch, capsys):
    rows = demo.backbone_table(['RepMobile-S'], rounds=1)
    assert len(rows) == 3 and rows[2].split()[0] == 'RepMobile-S'
    assert capsys.readouterr().out.rstrip().endswith(rows[2])
    monkeypatch.setattr(demo, 'max_relative_difference', lambda model, dtype: 1e-6)
    with pytest.raises(ExportError, match='differs from the training form by 1.00e-06'):
        demo.backbone_table(['RepMobile-S'], rounds=1)


@pytest.mark.slow
def test_make_demos_command_line_prints_the_backbone_table(tmp_path):
    """tools/demo.py (what `make demo` runs) as a process: the backbone table of one
    backbone and no journeys, then the total time."""
    result = check_tool('tools/demo.py', '--backbones', 'RepMobile-S', '--rounds', '1',
                        '--tasks', '--work-dir', str(tmp_path), process=True)
    lines = result.stdout.splitlines()
    assert lines[-1].startswith('demo finished in'), result.stdout
    assert any(line.split()[:1] == ['RepMobile-S'] for line in lines), result.stdout


def test_every_journey_has_floors_on_its_metrics():
    assert len(demo.JOURNEYS) == 5
    for journey in demo.JOURNEYS.values():
        assert journey.floors and set(journey.floors) <= set(journey.metrics)


def test_the_demo_ends_with_one_line_when_a_result_misses_its_floor(monkeypatch, capsys):
    """run_demo prints the summary, its floors and the total, then stops in one line
    naming each journey that missed its floor, the metric and its value (tools/demo.py
    exits 1)."""
    def journey(journey, work_dir, picture, backbone_checkpoint=None):
        if 'repvit' not in journey.config:
            return demo.JourneyReport([journey.title, '  floor: top-1 % >= 98.3: met'], [])
        return demo.JourneyReport([journey.title, '  floor: top-1 % >= 98.3: NOT MET'],
                                  [f'{journey.title}: top-1 % 97.222 < 98.3'])
    monkeypatch.setattr(demo, 'run_journey', journey)
    title = demo.JOURNEYS['classification-repvit'].title
    with pytest.raises(DemoFloorError) as error:
        demo.run_demo([], journeys=['classification', 'classification-repvit'])
    assert str(error.value) == f'results below their floors: {title}: top-1 % 97.222 < 98.3'
    console = capsys.readouterr().out
    assert '== Summary ==' in console and 'demo finished in' in console


def test_a_journey_runs_after_the_journeys_its_backbone_starts_from(monkeypatch, capsys):
    """Asked for detection alone, run_demo also runs the digits and scenes journeys its
    backbone goes through, first, and hands each the checkpoint its source trained."""
    calls = []

    def journey(journey, work_dir, picture, backbone_checkpoint=None):
        calls.append((osp.basename(work_dir), backbone_checkpoint))
        return demo.JourneyReport([journey.title], [], osp.join(work_dir, 'last.pth'))
    monkeypatch.setattr(demo, 'run_journey', journey)
    demo.run_demo([], journeys=['detection'], work_dir='w')
    assert calls == [('classification', None),
                     ('segmentation', osp.join('w', 'classification', 'last.pth')),
                     ('detection', osp.join('w', 'segmentation', 'last.pth'))]
    assert ('also running classification, segmentation: the backbones of the journeys '
            'asked for start from them') in capsys.readouterr().out
    assert demo.with_backbone_sources(['classification-repnext', 'classification']) == \
        ['classification', 'classification-repnext']


def test_a_chained_config_starts_from_where_tools_train_writes_its_source():
    """Each chained config's backbone checkpoint is the last one tools/train.py writes for
    the config it starts from (work_dirs/<config name>/), so that running the configs by
    hand in the demo's order needs no option."""
    from repmobile_mm.apis.runner import load_config
    chained = [journey for journey in demo.JOURNEYS.values() if journey.backbone_from]
    assert [journey.backbone_from for journey in chained] == ['classification', 'segmentation']
    for journey in chained:
        source = demo.JOURNEYS[journey.backbone_from].config
        loop = load_config(source).train_cfg
        last = (f'epoch_{loop.max_epochs}' if loop.get('max_epochs') else
                f'iter_{loop.max_iters}')
        name = osp.splitext(osp.basename(source))[0]
        assert load_config(journey.config).model.backbone.init_cfg == dict(
            type='Pretrained', prefix='backbone.', checkpoint=f'work_dirs/{name}/{last}.pth')
        assert load_config(journey.deploy_config).model.backbone.init_cfg is None


def test_training_and_scoring_leave_no_loader_workers_behind(tmp_path):
    """train() and evaluate() (each demo journey's stages) end their loaders' workers
    with their runs: left to the garbage collector, each loader cost the next run in the
    process a 5-second wait. An epoch loop (persistent workers, held by the loader) and
    an iteration loop without persistent workers (the endless iterator holds them)."""
    import multiprocessing

    from repmobile_mm.apis.runner import evaluate, load_config, name_run, train
    data = str(tmp_path / 'data')
    make_folder_dataset(data)
    before = set(multiprocessing.active_children())
    for loop, options in (('epochs', {}), ('iterations', {
            'train_cfg': dict(_delete_=True, type='IterBasedTrainLoop', max_iters=3),
            'param_scheduler': [], 'default_hooks.checkpoint.by_epoch': False,
            'train_dataloader.sampler.type': 'InfiniteSampler',
            'train_dataloader.persistent_workers': False})):
        cfg = load_config(demo.JOURNEYS['classification'].config,
                          {**tiny_options(data), **options})
        cfg.work_dir = str(tmp_path / loop)
        name_run(cfg, f'leave_no_workers_{loop}')
        assert cfg.train_dataloader.num_workers == cfg.test_dataloader.num_workers == 1
        runner = train(cfg, validate=False)
        assert set(multiprocessing.active_children()) <= before, loop
        checkpoint = runner.message_hub.get_info('last_ckpt')
        cfg = load_config(demo.JOURNEYS['classification'].config, tiny_options(data))
        cfg.work_dir = str(tmp_path / loop / 'test')
        name_run(cfg, f'leave_no_workers_{loop}_test')
        assert 'accuracy/top1' in evaluate(cfg, checkpoint)
        assert set(multiprocessing.active_children()) <= before, loop
