"""Class-balanced draws are frozen: `random_subset`, `holdout_split` and `ClassPools.sample`/
`members` give, for the same seed, exactly the indices they gave when the committed Fashion-MNIST
store (docs/results/fashion-mnist) was run — its rdm subsets and every synthesized set depend on
them, so a refactor that moves one index fails here.

The expected values were computed by the implementations the store was run with (a permutation +
stable sort per draw in engine/arms.py, a padded per-class table with random keys in
methods/pools.py) before they were merged into one table (engine/pools.py). Hashes are the first
16 hex digits of the SHA-256 of the int64 index bytes.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from ddray.engine import holdout_split, random_subset
from ddray.engine.pools import ClassPools, seeded_generator


def _h(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()[:16]


def _labels() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(42)
    balanced = torch.arange(10).repeat_interleave(7)[torch.randperm(70, generator=g)]
    counts = torch.tensor([5, 9, 3, 12, 7, 4, 30, 6, 8, 11])
    imbalanced = torch.arange(10).repeat_interleave(counts)[torch.randperm(int(counts.sum()), generator=g)]
    fmnist_sized = torch.randint(0, 10, (60000,), generator=g)
    return {"balanced": balanced, "imbalanced": imbalanced, "fmnist_sized": fmnist_sized}


LABELS = _labels()
SEEDS = (0, 1, 2, 7, 12345)

FROZEN = {
    'random_subset/balanced/ipc1/seed0': 'b95ad160026b4d80',
    'random_subset/balanced/ipc3/seed0': 'be183b5c3ca1e5ac',
    'holdout_split/balanced/0.1/seed0': '1da31f269e3f21ad/8f9795ea24106c03',
    'holdout_split/balanced/0.3/seed0': '41060cf144300f3e/0ef61cba6b5bee17',
    'sample/balanced/n1/seed0/stream1': '7d125289bad4502b',
    'sample/balanced/n3/seed0/stream1': 'ec2784e46b8ccec6',
    'sample/balanced/n1/seed0/stream3': '9725cc144de2f257',
    'sample/balanced/n3/seed0/stream3': '4602bb2b1500ad36',
    'sample/balanced/n1/seed0/stream7919': '8bc04df3c8b9459c',
    'sample/balanced/n3/seed0/stream7919': '3a82839a4028b7a1',
    'random_subset/balanced/ipc1/seed1': '9dd36398cf15ac8d',
    'random_subset/balanced/ipc3/seed1': '8ada4ed11e171824',
    'holdout_split/balanced/0.1/seed1': '169ef8c7c3bd31f6/d99aba3ed4aacc8b',
    'holdout_split/balanced/0.3/seed1': '42e4240c28627dd9/39259f5b6800ed0b',
    'sample/balanced/n1/seed1/stream1': 'bf51f4f9a25f0d2c',
    'sample/balanced/n3/seed1/stream1': 'e2aee7226ecd678e',
    'sample/balanced/n1/seed1/stream3': '591beba061a705a1',
    'sample/balanced/n3/seed1/stream3': '9837a9a9afaffa62',
    'sample/balanced/n1/seed1/stream7919': '94e846423bfcd6cc',
    'sample/balanced/n3/seed1/stream7919': 'a493db75fa70ae39',
    'random_subset/balanced/ipc1/seed2': 'e92d02b8f8d9c4c9',
    'random_subset/balanced/ipc3/seed2': 'b0cd8434bd2ab36c',
    'holdout_split/balanced/0.1/seed2': '516dd20f07027476/ae0219bb3047a380',
    'holdout_split/balanced/0.3/seed2': 'e4a99f52ab426129/da9b8e78a52fde24',
    'sample/balanced/n1/seed2/stream1': 'bec2125f948fa768',
    'sample/balanced/n3/seed2/stream1': '3c840cdb72aaa8c6',
    'sample/balanced/n1/seed2/stream3': 'c50a6203653fddaf',
    'sample/balanced/n3/seed2/stream3': '678868111c6652cd',
    'sample/balanced/n1/seed2/stream7919': '357bafd7395ca904',
    'sample/balanced/n3/seed2/stream7919': '6e1965a06d550bf0',
    'random_subset/balanced/ipc1/seed7': 'c5fea380be4390ce',
    'random_subset/balanced/ipc3/seed7': 'a6010c81e1b2a506',
    'holdout_split/balanced/0.1/seed7': '228503f35e5f3f82/cdb8189acc6a9233',
    'holdout_split/balanced/0.3/seed7': '5f19ae598d6fc488/0b9009c33a668aaa',
    'sample/balanced/n1/seed7/stream1': 'a14ac0e2e934ebe8',
    'sample/balanced/n3/seed7/stream1': '8f7ff20cc157b3a8',
    'sample/balanced/n1/seed7/stream3': '452c6d33a2623161',
    'sample/balanced/n3/seed7/stream3': 'e4c3818f8cd7e279',
    'sample/balanced/n1/seed7/stream7919': '0195e36e36623cf3',
    'sample/balanced/n3/seed7/stream7919': 'fe7848cf75f7e294',
    'random_subset/balanced/ipc1/seed12345': '1121c200c85d318a',
    'random_subset/balanced/ipc3/seed12345': '378c2fc93e7908c8',
    'holdout_split/balanced/0.1/seed12345': '7fea0476ebfae2e0/3e77e362bb3c627c',
    'holdout_split/balanced/0.3/seed12345': '82f9c86dedfac907/2e1799194b076bdb',
    'sample/balanced/n1/seed12345/stream1': '34eb99751e40c136',
    'sample/balanced/n3/seed12345/stream1': '91f17dc9785bef2d',
    'sample/balanced/n1/seed12345/stream3': 'a4985226e6c12ec7',
    'sample/balanced/n3/seed12345/stream3': '9d92529189589a9a',
    'sample/balanced/n1/seed12345/stream7919': '48c59e783a71cc57',
    'sample/balanced/n3/seed12345/stream7919': '32dda136d3b19c32',
    'members/balanced': '6d3b7b2b8d76e9dd',
    'random_subset/imbalanced/ipc1/seed0': '5326a401b02988a1',
    'random_subset/imbalanced/ipc3/seed0': 'bb21006058e85f3c',
    'holdout_split/imbalanced/0.1/seed0': 'c4dabb8bb9660425/3d6be4efe1c310b7',
    'holdout_split/imbalanced/0.3/seed0': '5cef59b8c687ffd8/4f8552b4d68a3aa8',
    'sample/imbalanced/n1/seed0/stream1': '4e751bdbf30b8371',
    'sample/imbalanced/n3/seed0/stream1': 'bd4909ca045d6aba',
    'sample/imbalanced/n1/seed0/stream3': '7b14ef49e684de7a',
    'sample/imbalanced/n3/seed0/stream3': '8ccbf96cdb6ad6d1',
    'sample/imbalanced/n1/seed0/stream7919': '3b7c1cd45c47ca95',
    'sample/imbalanced/n3/seed0/stream7919': '7afda2b6d112e565',
    'random_subset/imbalanced/ipc1/seed1': 'dca2099c9c1aad3c',
    'random_subset/imbalanced/ipc3/seed1': '85f5b195145bdb13',
    'holdout_split/imbalanced/0.1/seed1': '3d6578e1f42f290b/cd7dfa0071bed5bb',
    'holdout_split/imbalanced/0.3/seed1': '0004aed5039916b6/a2c6f0f45e1a56dc',
    'sample/imbalanced/n1/seed1/stream1': 'e1c7bba23f243050',
    'sample/imbalanced/n3/seed1/stream1': 'c51d4a478307c171',
    'sample/imbalanced/n1/seed1/stream3': '6be0e21b122ea374',
    'sample/imbalanced/n3/seed1/stream3': 'e1768704cc2bd52a',
    'sample/imbalanced/n1/seed1/stream7919': '7ff026d0ea637c6e',
    'sample/imbalanced/n3/seed1/stream7919': '858d406adbf38fd7',
    'random_subset/imbalanced/ipc1/seed2': '88fa037c60edaace',
    'random_subset/imbalanced/ipc3/seed2': '194f17020470be85',
    'holdout_split/imbalanced/0.1/seed2': '187ef7c24f6ce748/9b6edc90d1c8917f',
    'holdout_split/imbalanced/0.3/seed2': '4e1c648b18d32f1b/891347ca9c0af507',
    'sample/imbalanced/n1/seed2/stream1': '9f8da1563ee1d044',
    'sample/imbalanced/n3/seed2/stream1': '8751b92503af9670',
    'sample/imbalanced/n1/seed2/stream3': 'c7f065100c2423ea',
    'sample/imbalanced/n3/seed2/stream3': '77acd2f7206304c1',
    'sample/imbalanced/n1/seed2/stream7919': '6046c02759a07a91',
    'sample/imbalanced/n3/seed2/stream7919': '11a10ecc7db8ccf0',
    'random_subset/imbalanced/ipc1/seed7': '9044443e813a8177',
    'random_subset/imbalanced/ipc3/seed7': 'c1f1f9b9cae2f6b9',
    'holdout_split/imbalanced/0.1/seed7': '04125b2a9da313ff/79b0353b5d109d71',
    'holdout_split/imbalanced/0.3/seed7': '2ae468ddd5d42eea/11416eab64a794eb',
    'sample/imbalanced/n1/seed7/stream1': 'ad7038e61ad7d71f',
    'sample/imbalanced/n3/seed7/stream1': 'd062783a8769e9ef',
    'sample/imbalanced/n1/seed7/stream3': 'ef5b5b67effa7522',
    'sample/imbalanced/n3/seed7/stream3': 'ce3069e012708164',
    'sample/imbalanced/n1/seed7/stream7919': '37ba03c5e5a7e6a0',
    'sample/imbalanced/n3/seed7/stream7919': '481e3c6ff2c00009',
    'random_subset/imbalanced/ipc1/seed12345': 'cf7013e0f17d511b',
    'random_subset/imbalanced/ipc3/seed12345': 'dea39395e0403493',
    'holdout_split/imbalanced/0.1/seed12345': '568738e8405cd4b4/78b4b08aef794151',
    'holdout_split/imbalanced/0.3/seed12345': '75068f66468ed06b/636d7712fe4a29e3',
    'sample/imbalanced/n1/seed12345/stream1': '1fec619ecde3795b',
    'sample/imbalanced/n3/seed12345/stream1': 'd324c38e2e7c95e6',
    'sample/imbalanced/n1/seed12345/stream3': '8343fe19114a0cc2',
    'sample/imbalanced/n3/seed12345/stream3': '1be8ba1c011c902a',
    'sample/imbalanced/n1/seed12345/stream7919': '229eb5e33e774aef',
    'sample/imbalanced/n3/seed12345/stream7919': '0742a2d96c26ec27',
    'members/imbalanced': '12af69eef90862d5',
    'random_subset/fmnist_sized/ipc1/seed0': '38203f4bd7075223',
    'random_subset/fmnist_sized/ipc3/seed0': '8739fd9f560fd427',
    'random_subset/fmnist_sized/ipc10/seed0': '2185b21e957db4c4',
    'random_subset/fmnist_sized/ipc50/seed0': '7f6039f93c74fa08',
    'holdout_split/fmnist_sized/0.1/seed0': '5d8623b6a0dca2c0/63952d9de744c49a',
    'holdout_split/fmnist_sized/0.3/seed0': '4af12042d31ddfe9/a2493b43b20a8554',
    'sample/fmnist_sized/n1/seed0/stream1': 'ae7126439bae335e',
    'sample/fmnist_sized/n3/seed0/stream1': 'dbc46ca790f33b48',
    'sample/fmnist_sized/n1/seed0/stream3': '8b57cdee7835c8cf',
    'sample/fmnist_sized/n3/seed0/stream3': 'cf769cf3e3414d6a',
    'sample/fmnist_sized/n1/seed0/stream7919': '81c5e4266d13bffd',
    'sample/fmnist_sized/n3/seed0/stream7919': '8dc2ee45ea4bd76d',
    'random_subset/fmnist_sized/ipc1/seed1': '0bf4da49f3f16187',
    'random_subset/fmnist_sized/ipc3/seed1': 'a12f71f080afe1a3',
    'random_subset/fmnist_sized/ipc10/seed1': 'b0a45d0aa3ac5316',
    'random_subset/fmnist_sized/ipc50/seed1': 'c3fd8af221a287a5',
    'holdout_split/fmnist_sized/0.1/seed1': 'b315bd8ef12b134f/ef6b4ec715dbab98',
    'holdout_split/fmnist_sized/0.3/seed1': '98e7e1b874a9096c/5fcd999196646054',
    'sample/fmnist_sized/n1/seed1/stream1': '989c842f6153e7a6',
    'sample/fmnist_sized/n3/seed1/stream1': 'ba126d46db50a567',
    'sample/fmnist_sized/n1/seed1/stream3': '03232d7e1b651ab0',
    'sample/fmnist_sized/n3/seed1/stream3': '9195af8b885fbda3',
    'sample/fmnist_sized/n1/seed1/stream7919': 'cfaa54f2c52a0c6e',
    'sample/fmnist_sized/n3/seed1/stream7919': '2e50fbd4b797087d',
    'random_subset/fmnist_sized/ipc1/seed2': '329c967ae05d7cfd',
    'random_subset/fmnist_sized/ipc3/seed2': 'a6da0e461fbab6ce',
    'random_subset/fmnist_sized/ipc10/seed2': '9e793a6e57db367a',
    'random_subset/fmnist_sized/ipc50/seed2': '764499238d2a1b45',
    'holdout_split/fmnist_sized/0.1/seed2': '98204a10f0368c03/46a366488d754943',
    'holdout_split/fmnist_sized/0.3/seed2': '51a644b0e9ed3754/a2316c07667867bb',
    'sample/fmnist_sized/n1/seed2/stream1': '5c406bb2f3f3b4aa',
    'sample/fmnist_sized/n3/seed2/stream1': 'dc55a1819e1c5cb7',
    'sample/fmnist_sized/n1/seed2/stream3': 'daea1a8f68ba2773',
    'sample/fmnist_sized/n3/seed2/stream3': 'a456e657008274a2',
    'sample/fmnist_sized/n1/seed2/stream7919': 'f8b2a7231fc3f358',
    'sample/fmnist_sized/n3/seed2/stream7919': 'd9a50717f6e70dfb',
    'random_subset/fmnist_sized/ipc1/seed7': '2bd0186543747b6a',
    'random_subset/fmnist_sized/ipc3/seed7': '31e80cf3d2e5ab50',
    'random_subset/fmnist_sized/ipc10/seed7': 'e686d772278b6a66',
    'random_subset/fmnist_sized/ipc50/seed7': '742f6f119917ad64',
    'holdout_split/fmnist_sized/0.1/seed7': 'bdd0f76f9ec1c002/5b3264d1bb84186e',
    'holdout_split/fmnist_sized/0.3/seed7': 'e3be912fcb461f06/4cd47490bf6a9d5d',
    'sample/fmnist_sized/n1/seed7/stream1': '3798e924e906982f',
    'sample/fmnist_sized/n3/seed7/stream1': '477265607fbc3b32',
    'sample/fmnist_sized/n1/seed7/stream3': 'cc3ff29350262ca6',
    'sample/fmnist_sized/n3/seed7/stream3': '27483035f49febf6',
    'sample/fmnist_sized/n1/seed7/stream7919': 'a67dcd3afb5fb133',
    'sample/fmnist_sized/n3/seed7/stream7919': '9d9aef8052405ab6',
    'random_subset/fmnist_sized/ipc1/seed12345': 'ff2f0a57568cb084',
    'random_subset/fmnist_sized/ipc3/seed12345': 'ee02871a0e8150e2',
    'random_subset/fmnist_sized/ipc10/seed12345': '712b0ec2485a260a',
    'random_subset/fmnist_sized/ipc50/seed12345': 'ef517ddfa05193cb',
    'holdout_split/fmnist_sized/0.1/seed12345': '601ff8e89ac971ec/974e9aa9bb60bc92',
    'holdout_split/fmnist_sized/0.3/seed12345': '2736e59cb8ba4864/5a73efd6aa4f3c69',
    'sample/fmnist_sized/n1/seed12345/stream1': 'c69b84dcca5b97f6',
    'sample/fmnist_sized/n3/seed12345/stream1': 'a05a1d485b49d8f9',
    'sample/fmnist_sized/n1/seed12345/stream3': '2c1f62aa4124dbc8',
    'sample/fmnist_sized/n3/seed12345/stream3': 'cdc3ffca903b5e63',
    'sample/fmnist_sized/n1/seed12345/stream7919': '83fa4b8d983de7ab',
    'sample/fmnist_sized/n3/seed12345/stream7919': '6a333b5445ccd64b',
    'members/fmnist_sized': '92f8e2c8ceefd08e',
}


def _draws() -> dict[str, str]:
    out = {}
    for name, y in LABELS.items():
        pools = ClassPools.of(y, 10)
        for seed in SEEDS:
            for ipc in (1, 3) + ((10, 50) if name == "fmnist_sized" else ()):
                out[f"random_subset/{name}/ipc{ipc}/seed{seed}"] = _h(random_subset(y, 10, ipc, seed))
            for frac in (0.1, 0.3):
                kept, val = holdout_split(y, frac, seed)
                out[f"holdout_split/{name}/{frac}/seed{seed}"] = _h(kept) + "/" + _h(val)
            for stream in (1, 3, 7919):  # DM, RDED, random selection
                for n in (1, 3):
                    out[f"sample/{name}/n{n}/seed{seed}/stream{stream}"] = _h(pools.sample(n, seeded_generator(seed, stream)))
        out[f"members/{name}"] = _h(torch.cat([pools.members(c) for c in range(10)]))
    return out


def test_every_draw_is_bit_identical_to_the_frozen_one():
    got = _draws()
    assert got.keys() == FROZEN.keys()
    assert [k for k in FROZEN if got[k] != FROZEN[k]] == []


@pytest.mark.parametrize("seed, ipc, expected", [
    (0, 1, [29, 45, 23, 51, 4, 58, 31, 5, 48, 28]),
    (3, 2, [39, 9, 7, 61, 23, 13, 26, 19, 18, 2, 15, 36, 42, 31, 3, 68, 32, 33, 6, 16]),
])
def test_random_subset_literal(seed, ipc, expected):
    assert random_subset(LABELS["balanced"], 10, ipc, seed).tolist() == expected


def test_sample_and_holdout_literal():
    y = LABELS["balanced"]
    assert ClassPools.of(y, 10).sample(2, seeded_generator(0, 7919)).tolist() == [
        [39, 9], [61, 37], [17, 13], [66, 19], [4, 41], [15, 36], [42, 67], [3, 34], [33, 12], [20, 28]]
    assert holdout_split(y, 0.2, 1)[1].tolist() == [8, 18, 22, 29, 35, 42, 48, 51, 58, 69]
