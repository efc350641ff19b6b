"""The data releases: source, layout, and the digests and counts each is checked against.

Digests are recorded only where they were verified or are published by the
data's owner (see :mod:`bayes_mf.datasets`); an empty ``sha256`` map means
no per-file digest is known, and any entry added to it is verified.
"""

from ._synthetic import NETFLIX_SHAPE

#: sha256 of every ML-100K file the package reads, computed from the official release
#: (the copy described in shared/data/README.md; u.data's digest is the one published there)
_SHA256_100K = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
    "u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
    "u2.base": "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
    "u2.test": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
    "u3.base": "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
    "u3.test": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
    "u4.base": "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
    "u4.test": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
    "u5.base": "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
    "u5.test": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
}

_ARCHIVES = {
    "100k": {
        "folder": "ml-100k",
        "url": "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        "ratings": "u.data",
        "sha256": _SHA256_100K,
        "max_bytes": 20_000_000,  # the archive is about 5 MB; anything far larger is not it
    },
    # the larger releases: md5 of the archive as GroupLens publishes it (ml-*.zip.md5), rating
    # counts from each release's README; the ratings are streamed (see read_ratings)
    "1m": {
        "folder": "ml-1m",
        "url": "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        "md5": "c4d9eecfca2ab87c1945afe126590906",
        "ratings": "ratings.dat",
        "layout": "movielens-dat",
        "scale": (1.0, 5.0),
        "step": 1.0,
        "sha256": {},  # none verified: filled entries are checked at every first read
        "n_rows": {"ratings.dat": 1_000_209, "movies.dat": 3_883},
        "max_bytes": 30_000_000,  # about 6 MB
    },
    "10m": {
        "folder": "ml-10M100K",  # the archive's own folder name
        "url": "https://files.grouplens.org/datasets/movielens/ml-10m.zip",
        "md5": "ce571fd55effeba0271552578f2648bd",
        "ratings": "ratings.dat",
        "layout": "movielens-dat",
        "scale": (0.5, 5.0),
        "step": 0.5,
        "sha256": {},
        "n_rows": {"ratings.dat": 10_000_054},
        "max_bytes": 100_000_000,  # 65.6 MB
    },
    "20m": {
        "folder": "ml-20m",
        "url": "https://files.grouplens.org/datasets/movielens/ml-20m.zip",
        "md5": "cd245b17a1ae2cc31bb14903e1204af3",
        "ratings": "ratings.csv",
        "layout": "movielens-csv",
        "scale": (0.5, 5.0),
        "step": 0.5,
        "sha256": {},
        "n_rows": {"ratings.csv": 20_000_263},
        "max_bytes": 250_000_000,  # about 190 MB
    },
    "25m": {
        "folder": "ml-25m",
        "url": "https://files.grouplens.org/datasets/movielens/ml-25m.zip",
        "md5": "6b51fb2759a8657d3bfcbfc42b592ada",
        "ratings": "ratings.csv",
        "layout": "movielens-csv",
        "scale": (0.5, 5.0),
        "step": 0.5,
        "sha256": {},
        "n_rows": {"ratings.csv": 25_000_095},
        "max_bytes": 330_000_000,  # 262 MB
    },
    "32m": {
        "folder": "ml-32m",
        "url": "https://files.grouplens.org/datasets/movielens/ml-32m.zip",
        "md5": "d472be332d4daa821edc399621853b57",
        "ratings": "ratings.csv",
        "layout": "movielens-csv",
        "scale": (0.5, 5.0),
        "step": 0.5,
        "sha256": {},
        "n_rows": {"ratings.csv": 32_000_204},
        "max_bytes": 330_000_000,  # 239 MB
    },
}

#: the Netflix prize training set: local only (Netflix withdrew it; mirrors need a login)
_NETFLIX = {
    "folder": "netflix",
    "scale": (1.0, 5.0),
    "step": 1.0,
    "sha256": {},  # no digest known for these files; entries added here are verified
    "n_rows": NETFLIX_SHAPE[2],
    "n_users": NETFLIX_SHAPE[0],
    "n_items": NETFLIX_SHAPE[1],
}
