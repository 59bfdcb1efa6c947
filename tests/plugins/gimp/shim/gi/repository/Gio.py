class File:
    def __init__(self, path):
        self.path = path

    @classmethod
    def new_for_path(cls, path):
        return cls(path)

    def get_path(self):
        return self.path
