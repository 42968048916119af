"""The Redis backplane: several chatd nodes form one chat (see the README's
"Several nodes"). Sans-IO but for :mod:`chatd.cluster.backplane`, whose two
Redis connections the reactor owns like any other socket."""
