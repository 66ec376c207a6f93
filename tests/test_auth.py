"""
Tests for L{logsvc.auth}: token files, scopes, constant-time checks, reload.
"""

from __future__ import annotations

import os
from base64 import b64encode

from twisted.trial.unittest import SynchronousTestCase, TestCase

from logsvc.auth import TokenFileError, Tokens, authorizationToken, bearerToken, parseTokens


class ParseTests(SynchronousTestCase):
    def test_scopesAndComments(self) -> None:
        """Lines are 'scope token'; blank and # lines are skipped; a token may hold both scopes."""
        tokens = parseTokens("# comment\n\ningest aaa\nread bbb\nread aaa\n")
        self.assertEqual(tokens, {"ingest": [b"aaa"], "read": [b"bbb", b"aaa"]})

    def test_badLineNamesLineNotToken(self) -> None:
        """A bad line is reported by number, without the token in the message."""
        with self.assertRaises(TokenFileError) as caught:
            parseTokens("ingest ok\nadmin s3cr3t\n")
        self.assertIn("line 2", str(caught.exception))
        self.assertNotIn("s3cr3t", str(caught.exception))
        with self.assertRaises(TokenFileError):
            parseTokens("ingest\n")


class CheckTests(SynchronousTestCase):
    def test_disabledAllowsAll(self) -> None:
        """Without a token file every check passes."""
        self.assertTrue(Tokens().check(None, "read"))

    def test_scopes(self) -> None:
        """A token passes only for the scopes it is listed with."""
        tokens = Tokens.fromPairs([("ingest", "in"), ("read", "rd")])
        self.assertTrue(tokens.check(b"in", "ingest"))
        self.assertFalse(tokens.check(b"in", "read"))
        self.assertTrue(tokens.check(b"rd", "read"))
        self.assertFalse(tokens.check(b"wrong", "read"))
        self.assertFalse(tokens.check(None, "read"))
        self.assertFalse(tokens.check(b"", "ingest"))
        self.assertTrue(tokens.known(b"in"))
        self.assertFalse(tokens.known(b"zz"))

    def test_bearer(self) -> None:
        """The Bearer scheme is case-insensitive; other schemes give no token."""
        self.assertEqual(bearerToken(b"Bearer abc"), b"abc")
        self.assertEqual(bearerToken(b"bearer  abc "), b"abc")
        self.assertIsNone(bearerToken(b"Basic abc"))
        self.assertIsNone(bearerToken(b"Bearer"))
        self.assertIsNone(bearerToken(None))


class ReloadTests(TestCase):
    def test_reload(self) -> None:
        """reload() takes the file's new tokens; a broken file keeps the old ones."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("read one\n")
        tokens = Tokens(path)
        self.assertTrue(tokens.check(b"one", "read"))
        with open(path, "w") as f:
            f.write("read two\n")

        def broken(_: object) -> object:
            self.assertFalse(tokens.check(b"one", "read"))
            self.assertTrue(tokens.check(b"two", "read"))
            with open(path, "w") as f:
                f.write("bogus line here\n")
            return tokens.reload()

        def kept(_: object) -> None:
            self.assertTrue(tokens.check(b"two", "read"))
            os.remove(path)

        return tokens.reload().addCallback(broken).addCallback(kept)


class AuthorizationTokenTests(SynchronousTestCase):
    def test_schemes(self) -> None:
        """Bearer, Basic (password) and ApiKey (base64 id:key, or raw) all yield the token; others none."""
        self.assertEqual(authorizationToken(b"Bearer abc"), b"abc")
        self.assertEqual(authorizationToken(b"Basic " + b64encode(b"logsvc:abc")), b"abc")
        self.assertEqual(authorizationToken(b"basic " + b64encode(b":a:b")), b"a:b")
        self.assertEqual(authorizationToken(b"ApiKey " + b64encode(b"id1:abc")), b"abc")
        self.assertEqual(authorizationToken(b"ApiKey abc"), b"abc")
        self.assertIsNone(authorizationToken(b"Basic " + b64encode(b"nopassword")))
        self.assertIsNone(authorizationToken(b"Basic " + b64encode(b"user:")))
        self.assertIsNone(authorizationToken(b"Basic !!!"))
        self.assertIsNone(authorizationToken(b"Digest abc"))
        self.assertIsNone(authorizationToken(b"Bearer"))
        self.assertIsNone(authorizationToken(None))
