"""Hadamard matrices for every VAR width, from Sylvester's and Paley's constructions (no stored tables).

An order n = m * 2**k is built as kron(Paley(m), Sylvester(2**k)), where m is 1, q + 1 for a prime
q = 3 (mod 4) (Paley I) or 2 (q + 1) for a prime q = 1 (mod 4) (Paley II). VAR widths: 1024 = 2**10,
1280 = 20 * 64, 1536 = 12 * 128, 1920 = 60 * 32, 2304 = 36 * 64; our embedded width 384 = 12 * 32.
"""

from __future__ import annotations

import functools

import torch


def _is_prime(q: int) -> bool:
    return q >= 2 and all(q % d for d in range(2, int(q**0.5) + 1))


def _quadratic_character(q: int) -> list[int]:
    """chi(a) for a in GF(q): 0 at 0, 1 on squares, -1 on non-squares."""
    squares = {(x * x) % q for x in range(1, q)}
    return [0] + [1 if a in squares else -1 for a in range(1, q)]


def _jacobsthal(q: int) -> torch.Tensor:
    chi = _quadratic_character(q)
    return torch.tensor([[chi[(j - i) % q] for j in range(q)] for i in range(q)], dtype=torch.float64)


def paley_type_1(q: int) -> torch.Tensor:
    """Order q + 1 for a prime q = 3 (mod 4): I + S with S = [[0, 1^T], [-1, Q]] skew-symmetric."""
    if not (_is_prime(q) and q % 4 == 3):
        raise ValueError(f"Paley I needs a prime q = 3 mod 4, got {q}")
    S = torch.zeros(q + 1, q + 1, dtype=torch.float64)
    S[0, 1:], S[1:, 0], S[1:, 1:] = 1, -1, _jacobsthal(q)
    return torch.eye(q + 1, dtype=torch.float64) + S


def paley_type_2(q: int) -> torch.Tensor:
    """Order 2 (q + 1) for a prime q = 1 (mod 4): the symmetric conference matrix C with each entry
    replaced by a 2x2 block (0 -> [[1, -1], [-1, -1]], +-1 -> +-[[1, 1], [1, -1]])."""
    if not (_is_prime(q) and q % 4 == 1):
        raise ValueError(f"Paley II needs a prime q = 1 mod 4, got {q}")
    C = torch.zeros(q + 1, q + 1, dtype=torch.float64)
    C[0, 1:], C[1:, 0], C[1:, 1:] = 1, 1, _jacobsthal(q)
    zero_block = torch.tensor([[1.0, -1.0], [-1.0, -1.0]], dtype=torch.float64)
    sign_block = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    return torch.kron(C, sign_block) + torch.kron((C == 0).double(), zero_block)


def sylvester(n: int) -> torch.Tensor:
    """Natural-order Sylvester matrix of order n = 2**k (symmetric)."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"Sylvester's construction needs a power of two, got {n}")
    H = torch.ones(1, 1, dtype=torch.float64)
    while H.shape[0] < n:
        H = torch.kron(torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64), H)
    return H


def _paley(m: int) -> torch.Tensor | None:
    if m == 1:
        return torch.ones(1, 1, dtype=torch.float64)
    if _is_prime(m - 1) and (m - 1) % 4 == 3:
        return paley_type_1(m - 1)
    if m % 2 == 0 and _is_prime(m // 2 - 1) and (m // 2 - 1) % 4 == 1:
        return paley_type_2(m // 2 - 1)
    return None


@functools.lru_cache(maxsize=32)
def _hadamard_cached(n: int) -> torch.Tensor:
    # on the CPU whatever default device is in force: one built under `with torch.device("meta")` (how quantized
    # checkpoints are loaded) would otherwise be cached as a meta tensor and returned to every later caller
    with torch.device("cpu"):
        power = n & -n  # the largest power of two dividing n
        while power >= 1:
            core = _paley(n // power)
            if core is not None:
                return torch.kron(core, sylvester(power))
            power //= 2
    raise ValueError(
        f"no Hadamard matrix of order {n} from Sylvester and Paley constructions; "
        "supported orders are m * 2**k with m = 1, q + 1 (prime q = 3 mod 4) or 2 (q + 1) (prime q = 1 mod 4)"
    )


def hadamard(n: int) -> torch.Tensor:
    """A Hadamard matrix of order n (entries +-1, H H^T = n I), float64 on the CPU."""
    return _hadamard_cached(n).clone()
