"""The embedded default's shared cache: Django's file cache, made to drop expired entries first.

Every web process on the machine sees the same folder (unlike LocMemCache, which is per process),
so a dashboard's arguments stored by one worker are found by the worker that serves its iframe.
Django's FileBasedCache, once full, deletes a random third of its files, live ones included; this
one first removes the expired entries and culls at random only if it is still full.
"""

from __future__ import annotations

from django.core.cache.backends.filebased import FileBasedCache


class ExpiringFileCache(FileBasedCache):
    def _cull(self) -> None:
        filelist = self._list_cache_files()
        if len(filelist) < self._max_entries:
            return
        live = 0
        for fname in filelist:
            try:
                with open(fname, "rb") as f:
                    if not self._is_expired(f):  # deletes the file when expired
                        live += 1
            except FileNotFoundError:
                continue  # removed meanwhile by another process
        if live >= self._max_entries:
            super()._cull()
