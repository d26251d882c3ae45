"""marshmallow schemas: the only definition of the API's wire format.

One module per resource; views import the schemas from it.
"""
