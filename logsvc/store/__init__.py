"""Record stores: L{logsvc.store.base.IStore} and its implementations."""
